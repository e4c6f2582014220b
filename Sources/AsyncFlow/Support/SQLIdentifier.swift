// SQLIdentifier.swift — the names the database integrations (AsyncFlowPostgres, AsyncFlowSQLite) put into SQL
// text: a schema or a table, which cannot be a bound value, so they are held to lower-case identifiers.

/// Why `name`, given as `parameter`, is not a lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most 63
/// characters), or nil when it is one.
package func sqlIdentifierProblem(_ name: String, parameter: String) -> String? {
    func letter(_ c: Character) -> Bool { c == "_" || ("a"..."z").contains(c) }
    guard name.count <= 63, let first = name.first, letter(first),
        name.allSatisfy({ letter($0) || ("0"..."9").contains($0) })
    else {
        return
            "\(parameter): \"\(name)\": expected a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters)"
    }
    return nil
}
