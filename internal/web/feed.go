package web

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"slices"
	"time"

	"herald/internal/history"
)

// The feeds carry the recent events, newest first, with their text bodies.
// A reader needs the token in the feed URL (…/feed.atom?token=…).

type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	Title   string      `xml:"title"`
	ID      string      `xml:"id"`
	Updated string      `xml:"updated"`
	Link    atomLink    `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomLink struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr,omitempty"`
}

type atomEntry struct {
	Title    string       `xml:"title"`
	ID       string       `xml:"id"`
	Updated  string       `xml:"updated"`
	Link     atomLink     `xml:"link"`
	Category atomCategory `xml:"category"`
	Content  atomText     `xml:"content"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

type atomText struct {
	Type string `xml:"type,attr"`
	Body string `xml:",chardata"`
}

func (h *Handler) feedEntries(w http.ResponseWriter) ([]history.Entry, bool) {
	evs, err := h.opt.History(history.Filter{Limit: recent})
	if err != nil {
		h.log.Error("status page: reading the history", "err", err)
		http.Error(w, "the history cannot be read", http.StatusInternalServerError)
		return nil, false
	}
	slices.Reverse(evs)
	return evs, true
}

func baseURL(r *http.Request) string { return "http://" + r.Host }

func (h *Handler) atom(w http.ResponseWriter, r *http.Request) {
	evs, ok := h.feedEntries(w)
	if !ok {
		return
	}
	base := baseURL(r)
	f := atomFeed{Title: "herald on " + h.opt.Hostname, ID: "urn:herald:" + h.opt.Hostname + ":events",
		Updated: h.opt.Now().UTC().Format(time.RFC3339), Link: atomLink{Href: base + "/"}}
	for _, e := range evs {
		f.Entries = append(f.Entries, atomEntry{
			Title:    "[" + e.Event.Severity.String() + "] " + e.Event.Title,
			ID:       "urn:herald:event:" + e.Event.ID,
			Updated:  e.Received.UTC().Format(time.RFC3339),
			Link:     atomLink{Href: base + "/event/" + e.Event.ID},
			Category: atomCategory{Term: e.Event.Type()},
			Content:  atomText{Type: "text", Body: e.Event.Body},
		})
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	_, _ = w.Write([]byte(xml.Header))
	enc := xml.NewEncoder(w)
	if err := enc.Encode(f); err != nil {
		h.log.Warn("status page: atom feed", "err", err)
	}
}

// jsonFeed serves JSON Feed 1.1 (https://jsonfeed.org/version/1.1).
func (h *Handler) jsonFeed(w http.ResponseWriter, r *http.Request) {
	evs, ok := h.feedEntries(w)
	if !ok {
		return
	}
	type item struct {
		ID            string         `json:"id"`
		URL           string         `json:"url"`
		Title         string         `json:"title"`
		ContentText   string         `json:"content_text"`
		DatePublished string         `json:"date_published"`
		Tags          []string       `json:"tags,omitempty"`
		Herald        map[string]any `json:"_herald"`
	}
	base := baseURL(r)
	feed := struct {
		Version string `json:"version"`
		Title   string `json:"title"`
		HomeURL string `json:"home_page_url"`
		Items   []item `json:"items"`
	}{Version: "https://jsonfeed.org/version/1.1", Title: "herald on " + h.opt.Hostname, HomeURL: base + "/", Items: []item{}}
	for _, e := range evs {
		feed.Items = append(feed.Items, item{
			ID: e.Event.ID, URL: base + "/event/" + e.Event.ID, Title: e.Event.Title, ContentText: e.Event.Body,
			DatePublished: e.Received.UTC().Format(time.RFC3339), Tags: []string{e.Event.Type(), e.Event.Severity.String()},
			Herald: map[string]any{"severity": e.Event.Severity, "fields": e.Event.Fields, "deliveries": e.Deliveries},
		})
	}
	w.Header().Set("Content-Type", "application/feed+json; charset=utf-8")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(feed); err != nil {
		h.log.Warn("status page: json feed", "err", err)
	}
}
