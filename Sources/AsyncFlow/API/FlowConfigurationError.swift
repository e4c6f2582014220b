/// A pipeline was described with a value it cannot run with: `workers: 0`, a capacity of 0, a bad
/// `FLOW_*` environment variable, too few layers. Thrown by ``pipeline(_:_:options:)`` before any item
/// is pulled from the source.
public struct FlowConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The parameter or environment variable at fault, e.g. `"workers"` or `"FLOW_CPUS"`.
    public let parameter: String
    /// What is wrong with it, naming the value.
    public let message: String
    /// The layer (its index in the pipeline and its name) the parameter belongs to, if any.
    public let layer: String?

    public init(parameter: String, message: String, layer: String? = nil) {
        self.parameter = parameter
        self.message = message
        self.layer = layer
    }

    public var description: String {
        if let layer { return "\(layer): \(parameter): \(message)" }
        return message.hasPrefix(parameter) ? message : "\(parameter): \(message)"
    }
}
