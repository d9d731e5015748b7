// Package version holds herald's version string, set at build time with
// -ldflags "-X herald/internal/version.Version=...".
package version

// Version is the release this binary was built from.
var Version = "dev"
