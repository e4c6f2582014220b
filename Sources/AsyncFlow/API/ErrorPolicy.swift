/// What a layer does when its closure throws for an item.
public enum ErrorPolicy: Sendable, Equatable {
    /// Stop the pipeline at the first error and rethrow the closure's own error (the default).
    case fail
    /// Count the item as skipped, keep the first errors in the report, and go on.
    case skip
    /// Call the closure again for the same item up to `attempts` more times, then apply ``fail``.
    case retry(attempts: Int)
}
