package app

import (
	"sync"

	"herald/internal/router"
)

// routers are the daemon's routers for one Settings, compiled once on
// first use (router.New) and dropped with the Settings on reload.
type routers struct {
	once    sync.Once
	all     *router.Router // Settings.Notify
	relayed *router.Router // RouteConfig(true): a mail relayed to all its recipients
}

// router returns the compiled router for RouteConfig(relayedOnly).
func (s *Settings) router(relayedOnly bool) *router.Router {
	s.routers.once.Do(func() {
		s.routers.all = router.New(s.Notify, nil)
		cfg, _ := s.RouteConfig(true)
		s.routers.relayed = s.routers.all
		if cfg != s.Notify {
			s.routers.relayed = router.New(cfg, nil)
		}
	})
	if relayedOnly {
		return s.routers.relayed
	}
	return s.routers.all
}
