package app

import (
	"herald/internal/classify"
	"herald/internal/mailconv"
)

// Classifiers returns the mail classifiers of s: the classifier sections
// of notifications.cfg in file order, then the built-ins herald.cfg does
// not disable (classifiers-disable).
func Classifiers(s *Settings) []mailconv.Classifier {
	return classify.Chain(s.Notify.Classifiers, s.Daemon.ClassifiersDisable)
}
