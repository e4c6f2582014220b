// Output.swift — the examples' standard output, line by line.
// This file imports the C library alone: with @preconcurrency, its `stdout` global can be named here
// (a file that imports Foundation cannot, in Swift 6 mode).
#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    @preconcurrency import Darwin
#endif

/// Make standard output line-buffered, so each line reaches a pipe (`tee`, a service manager, a container
/// log) as it is printed, not when a block fills or the process ends.
public func lineBufferedOutput() { setvbuf(stdout, nil, _IOLBF, 0) }
