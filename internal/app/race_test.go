//go:build race

package app

// raceEnabled: the race detector empties sync.Pools at random, so code
// that reuses buffers allocates more under it (TestBigMailIsMappedNotRead).
const raceEnabled = true
