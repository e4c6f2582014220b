import CFlowChecks
import Foundation
import Testing

/// Runs every C check of Tests/CFlowChecks (the same code ctest runs) from `swift test`.
extension Serial {
    @Suite("CFlow C runtime checks")
    struct CFlowChecksTests {
        static let names: [String] = (0..<flow_check_count()).map { String(cString: flow_check_name($0)) }

        @Test("registry lists the checks")
        func registry() {
            #expect(Self.names.count == 21)
            #expect(Set(Self.names).count == Self.names.count)
        }

        @Test("C check", arguments: names)
        func check(_ name: String) throws {
            var message = [CChar](repeating: 0, count: 512)
            let rc = flow_check_run(name, &message, message.count)
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            try #require(rc != FLOW_CHECK_FAIL, "\(name): \(text)")
            if rc == FLOW_CHECK_SKIP {
                print("skipped \(name): \(text)")
            } else {
                print("\(name): \(text)")
            }
        }
    }
}
