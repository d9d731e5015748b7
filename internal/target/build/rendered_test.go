package build

import (
	"context"
	"testing"

	"herald/internal/event"
	"herald/internal/render"
	"herald/internal/target"
)

// batchFake is a local target that records what it is handed, one event at
// a time or in batches, and may verify.
type batchFake struct {
	got     []*event.Event
	batches int
}

func (f *batchFake) Deliver(_ context.Context, ev *event.Event) error {
	f.got = append(f.got, ev)
	return nil
}

func (f *batchFake) DeliverBatch(_ context.Context, evs []*event.Event) []error {
	f.batches++
	f.got = append(f.got, evs...)
	return make([]error, len(evs))
}

func (f *batchFake) IsLocal() bool     { return true }
func (f *batchFake) IgnoresMail() bool { return true }

type verifyingBatchFake struct{ *batchFake }

func (verifyingBatchFake) Delivered(context.Context, *event.Event) (bool, error) { return true, nil }

type plainFake struct{}

func (plainFake) Deliver(context.Context, *event.Event) error { return nil }

// The rendering wrapper keeps what the queue asks of a target: batch
// delivery (each event rendered as Deliver renders it), verification,
// locality and mail blindness, and adds none the target lacks.
func TestRenderedKeepsTheTargetsCapabilities(t *testing.T) {
	r, err := render.New("")
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{ID: "e1", Title: "raw title", Fields: map[string]string{"type": "vzdump"}}
	want := r.Render(ev)
	for _, verifies := range []bool{false, true} {
		f := &batchFake{}
		var tg target.Target = f
		if verifies {
			tg = verifyingBatchFake{f}
		}
		w := rendered(tg, "mbox", r)
		b, ok := w.(target.Batcher)
		if !ok {
			t.Fatalf("verifies=%v: the rendered target lost DeliverBatch", verifies)
		}
		if _, ok := w.(target.Verifier); ok != verifies {
			t.Errorf("verifies=%v: rendered target is a Verifier: %v", verifies, ok)
		}
		if !target.IsLocal(w) || !target.IgnoresMail(w) {
			t.Errorf("verifies=%v: IsLocal %v, IgnoresMail %v, want both", verifies, target.IsLocal(w), target.IgnoresMail(w))
		}
		if errs := b.DeliverBatch(t.Context(), []*event.Event{ev, ev}); len(errs) != 2 || errs[0] != nil || errs[1] != nil {
			t.Fatalf("DeliverBatch = %v", errs)
		}
		if err := w.Deliver(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		if f.batches != 1 || len(f.got) != 3 {
			t.Fatalf("the target got %d events in %d batches, want 3 in 1", len(f.got), f.batches)
		}
		for i, got := range f.got {
			if got.Title != want.Title || got.Body != want.Body {
				t.Errorf("event %d handed over as %q / %q, want the rendered %q / %q", i, got.Title, got.Body, want.Title, want.Body)
			}
		}
	}
	if _, ok := rendered(plainFake{}, "gotify", r).(target.Batcher); ok {
		t.Error("a target without DeliverBatch gained one through rendering")
	}
}
