package delivery

import (
	"encoding/json"
	"fmt"
	"herald/internal/safeio"
	"os"
	"reflect"
	"strings"
	"testing"

	"herald/internal/event"
	"herald/internal/target"
)

// bigMail is a mail too big to be kept inside its event file: it is
// stored as events/ID.eml.
func bigMail(id string) []byte {
	return []byte("Subject: " + id + "\r\n\r\n" + strings.Repeat("x", inlineMax) + "\r\n")
}

func mailEvent(id string, raw []byte) *event.Event {
	ev := newEvent(id)
	ev.Mail = &event.Mail{Raw: raw, From: "a@b", Recipients: []string{"root@h", "ops@h"}, UID: 1000}
	return ev
}

// The attempts of one event share one read of its file, each getting a
// copy of its own (a target changing its event changes no other target's),
// and a rewritten event file is read again.
func TestEventCacheCopiesAndFollowsTheFile(t *testing.T) {
	h := newHarness(t, t.TempDir(), map[string]target.Target{"a": nop{}}, nil)
	q := h.open()
	defer q.Close()
	if err := q.Enqueue(mailEvent("ev1", []byte("Subject: x\r\n\r\nbody\r\n")), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	want, err := q.readEvent("ev1", false)
	if err != nil {
		t.Fatal(err)
	}
	first, err := q.cachedEvent("ev1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("loaded %+v, want %+v", first, want)
	}
	first.Title = "changed by a target"
	first.Fields["type"] = "changed"
	first.Mail.Recipients[0] = "changed@h"
	if n := len(q.cache.m); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}
	again, err := q.cachedEvent("ev1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("second load %+v, want the event as stored %+v", again, want)
	}
	if again.Mail == nil || again.Mail.Raw != nil || again.Mail.From != "a@b" {
		t.Errorf("the cached event carries its raw mail or lost its envelope: %+v", again.Mail)
	}

	// A rewrite of the event file (a new inode) is read again.
	ef, err := q.readEventFile("ev1")
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvent("ev1")
	ev.Title = "rewritten"
	if ef.Event, err = json.Marshal(ev); err != nil {
		t.Fatal(err)
	}
	if err := q.storeEventFile("ev1", ef); err != nil {
		t.Fatal(err)
	}
	got, err := q.cachedEvent("ev1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "rewritten" {
		t.Errorf("after a rewrite: title %q, want the file's", got.Title)
	}
}

// The cache stays within its bounds and never keeps a raw mail.
func TestEventCacheBounds(t *testing.T) {
	var c eventCache
	body := strings.Repeat("y", 512<<10)
	for i := range 2 * cacheEntries {
		id := fmt.Sprint("ev", i)
		ev := newEvent(id)
		ev.Body = body
		c.put(id, safeio.FileVersion{Ino: int64(i)}, ev, storedMail{size: -1})
		if len(c.m) > cacheEntries || c.bytes > cacheBytes || len(c.order) != len(c.m) {
			t.Fatalf("after %d puts: %d entries, %d bytes, order %d", i+1, len(c.m), c.bytes, len(c.order))
		}
	}
	last := fmt.Sprint("ev", 2*cacheEntries-1)
	if ev, _ := c.get(last, safeio.FileVersion{Ino: 2*cacheEntries - 1}); ev == nil {
		t.Error("the newest entry was evicted")
	}
	if ev, _ := c.get(last, safeio.FileVersion{Ino: 1}); ev != nil {
		t.Error("an entry served a different version of its file")
	}
	if ev, _ := c.get("ev0", safeio.FileVersion{Ino: 0}); ev != nil {
		t.Error("the oldest entry was not evicted")
	}
}

// An attempt that needs the mail takes the event from the cache and reads
// only the mail: the event file is not decoded a second time. (The file is
// changed behind the cache's back, keeping its identity, to tell the two
// apart.) The mail's size is still checked against the event file's.
func TestDeliverWithMailUsesTheCache(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"a": nop{}}, nil)
	q := h.open()
	defer q.Close()
	raw := []byte("Subject: x\r\n\r\nbody\r\n")
	if err := q.Enqueue(mailEvent("ev1", raw), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	h.writeOut() // the event file on disk, to be changed there
	if _, err := q.cachedEvent("ev1"); err != nil {
		t.Fatal(err)
	}
	path := q.eventPath("ev1")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), `"title":"backup failed"`, `"title":"BACKUP FAILED"`, 1)
	if changed == string(b) {
		t.Fatalf("no title in %s", b)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(changed), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}

	ev, m, err := q.readEventToDeliver("ev1", true)
	if err != nil || m != nil {
		t.Fatalf("readEventToDeliver: %v (mapping %v)", err, m)
	}
	if ev.Title != "backup failed" {
		t.Errorf("title %q: the event file was decoded again", ev.Title)
	}
	if string(ev.Mail.Raw) != string(raw) || ev.Mail.From != "a@b" || ev.Mail.UID != 1000 {
		t.Errorf("mail %+v", ev.Mail)
	}

	// A small mail is kept inside its event file: no .eml.
	if _, err := os.Stat(q.mailPath("ev1")); !os.IsNotExist(err) {
		t.Errorf("an inline mail has an .eml: %v", err)
	}

	// A big one is an .eml, read (not decoded again) and refused when it
	// is not the size its event file says.
	big := bigMail("ev2")
	if err := q.Enqueue(mailEvent("ev2", big), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	ev, _, err = q.readEventToDeliver("ev2", true)
	if err != nil || string(ev.Mail.Raw) != string(big) {
		t.Fatalf("big mail: %v, %d bytes", err, len(ev.Mail.Raw))
	}
	if err := os.WriteFile(q.mailPath("ev2"), big[:5], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.readEventToDeliver("ev2", true); err == nil || !strings.Contains(err.Error(), "want") {
		t.Errorf("a short mail: %v", err)
	}
}

// A queue written before mails were kept inline (every mail an .eml, no
// "inline" in the event file) still delivers its mails.
func TestEventFileWithoutInlineMail(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"a": nop{}}, nil)
	q := h.open()
	raw := []byte("Subject: old\r\n\r\nbody\r\n")
	ef := fmt.Sprintf(`{"event":{"id":"old1","timestamp":"2025-05-23T11:00:00Z","severity":"info","title":"old"},`+
		`"mail":{"from":"a@b","recipients":["root@h"],"size":%d,"uid":0},"targets":[{"name":"a","created":"2025-05-23T12:00:00Z"}]}`, len(raw))
	if err := os.WriteFile(q.eventPath("old1"), []byte(ef), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q.mailPath("old1"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ev, _, err := q.readEventToDeliver("old1", true)
	if err != nil || string(ev.Mail.Raw) != string(raw) || ev.Mail.From != "a@b" {
		t.Fatalf("old event file: %v %+v", err, ev)
	}
	// An empty mail, whatever wrote it, is an empty mail.
	ef = strings.Replace(ef, fmt.Sprintf(`"size":%d`, len(raw)), `"size":0`, 1)
	if err := os.WriteFile(q.eventPath("old1"), []byte(ef), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(q.mailPath("old1")); err != nil {
		t.Fatal(err)
	}
	ev, _, err = q.readEventToDeliver("old1", true)
	if err != nil || ev.Mail.Raw == nil || len(ev.Mail.Raw) != 0 {
		t.Fatalf("empty mail: %v %+v", err, ev.Mail)
	}
}
