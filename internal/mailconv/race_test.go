//go:build race

package mailconv

// raceEnabled scales the time-bound tests: the race detector slows the
// HTML parser down about fifty times.
const raceEnabled = true
