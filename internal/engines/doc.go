// Package engines holds weir's built-in engines and the catalog that joins
// them with external ones.
//
// Built-in engines register themselves in the engine package's Default
// registry from init functions in this package (one file each), so
// importing it is what makes them available; the probe engine is the
// first. External engines are registered with a manifest (POST /engines,
// or --engines-dir at start) and kept in the metadata store, so every weir
// process sees the same set. A Catalog lists both, with each engine's
// availability: a built-in engine is unavailable while a program it
// requires is missing, an HTTP engine while its /ready webhook does not
// answer 200. docs/engines.md's engine table is generated from the
// registry by MarkdownTable.
package engines
