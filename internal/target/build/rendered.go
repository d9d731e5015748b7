package build

import (
	"context"

	"herald/internal/event"
	"herald/internal/render"
	"herald/internal/target"
)

// renderedTarget hands a target the event with title and body rendered from
// the templates of its type. The file and exec targets get the event
// itself: they pass it on as data.
type renderedTarget struct {
	target.Target
	r *render.Renderer
}

func rendered(t target.Target, typ string, r *render.Renderer) target.Target {
	if typ == "file" || typ == "exec" {
		return t
	}
	rt := renderedTarget{Target: t, r: r}
	v, verifies := t.(target.Verifier)
	b, batches := t.(target.Batcher)
	switch {
	case verifies && batches:
		return renderedBatchVerifier{renderedBatcher{rt, b}, v}
	case verifies:
		return renderedVerifier{rt, v}
	case batches:
		return renderedBatcher{rt, b}
	}
	return rt
}

// Unwrap returns the wrapped target.
func (t renderedTarget) Unwrap() target.Target { return t.Target }

// IgnoresMail passes the wrapped target's answer on (target.MailBlind).
func (t renderedTarget) IgnoresMail() bool { return target.IgnoresMail(t.Target) }

// IsLocal passes the wrapped target's answer on (target.Local).
func (t renderedTarget) IsLocal() bool { return target.IsLocal(t.Target) }

func (t renderedTarget) Deliver(ctx context.Context, ev *event.Event) error {
	return t.Target.Deliver(ctx, t.r.Render(ev))
}

type renderedVerifier struct {
	renderedTarget
	v target.Verifier
}

func (t renderedVerifier) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	return t.v.Delivered(ctx, ev)
}

// renderedBatcher passes the wrapped target's batch delivery on
// (target.Batcher), each event rendered as Deliver renders it.
type renderedBatcher struct {
	renderedTarget
	b target.Batcher
}

func (t renderedBatcher) DeliverBatch(ctx context.Context, evs []*event.Event) []error {
	out := make([]*event.Event, len(evs))
	for i, ev := range evs {
		out[i] = t.r.Render(ev)
	}
	return t.b.DeliverBatch(ctx, out)
}

type renderedBatchVerifier struct {
	renderedBatcher
	v target.Verifier
}

func (t renderedBatchVerifier) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	return t.v.Delivered(ctx, ev)
}

// Unwrap returns the target t wraps (for rendering), or t itself.
func Unwrap(t target.Target) target.Target {
	for {
		u, ok := t.(interface{ Unwrap() target.Target })
		if !ok {
			return t
		}
		t = u.Unwrap()
	}
}

// memberTargets returns the per-member targets of an alertmanager target
// (nil for any other): the queue delivers what a member is owed to them.
func memberTargets(t target.Target) map[string]target.Target {
	if m, ok := Unwrap(t).(interface {
		Members() map[string]target.Target
	}); ok {
		return m.Members()
	}
	return nil
}
