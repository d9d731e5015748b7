//go:build !race

package mailconv

// raceEnabled scales the time-bound tests (see race_test.go).
const raceEnabled = false
