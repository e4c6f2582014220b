extension Duration {
    /// Whole nanoseconds (truncated).
    @inlinable var wholeNanoseconds: Int {
        Int(components.seconds) * 1_000_000_000 + Int(components.attoseconds / 1_000_000_000)
    }

    /// Seconds as a Double.
    @inlinable var secondsDouble: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
