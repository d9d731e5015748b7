package mailconv

import (
	"bytes"
	"strings"

	"github.com/jaytaylor/html2text"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

const (
	// maxHTMLDepth is the deepest element nesting handed to html2text. Its
	// renderer recurses per element and copies the text of nested <b>/<hN>
	// at every level, so deep nesting costs depth × size; real mail HTML
	// (layout tables included) stays far below this.
	maxHTMLDepth = 256
	// maxHTMLBytes bounds the HTML source rendered by html2text; a larger
	// document is reduced to text by stripTags, which is linear. The bound
	// exists because x/net/html joins adjacent text with string
	// concatenation: text runs separated by tags the parser drops (stray
	// <tr>/<td> outside a table) cost time quadratic in the input. At this
	// size the worst case stays near 0.1 s; real HTML-only notification
	// mails are far smaller. Measured with x/net v0.6.0 (the version in
	// go.mod); v0.62.0 parses the same shape linearly, so after an upgrade
	// this bound can be raised.
	maxHTMLBytes = 256 << 10
)

// htmlToText renders an HTML body as readable text with html2text (links
// kept as "text ( url )", no ASCII-art tables). It never fails: input that
// html2text cannot handle safely falls back to stripTags.
func htmlToText(src string) (text string) {
	if len(src) > maxHTMLBytes {
		return stripTags(src)
	}
	defer func() {
		// html2text is third-party code working on untrusted input; a
		// notification must survive its bugs.
		if recover() != nil {
			text = stripTags(src)
		}
	}()
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil || htmlDepth(doc) > maxHTMLDepth {
		return stripTags(src)
	}
	lineUpTables(doc)
	out, err := html2text.FromHTMLNode(doc, html2text.Options{PrettyTables: false, OmitLinks: false})
	if err != nil {
		return stripTags(src)
	}
	return out
}

// htmlDepth returns the deepest nesting of doc, walking iteratively so that
// the check itself cannot overflow the stack.
func htmlDepth(doc *html.Node) int {
	depth, maxDepth := 0, 0
	n := doc
	for n != nil {
		if n.FirstChild != nil {
			n = n.FirstChild
			depth++
			if depth > maxDepth {
				maxDepth = depth
			}
			continue
		}
		for n != nil && n.NextSibling == nil {
			n = n.Parent
			depth--
		}
		if n != nil {
			n = n.NextSibling
		}
	}
	return maxDepth
}

// lineUpTables makes tables readable without html2text's PrettyTables (which
// draws wide ASCII boxes): without help html2text runs a whole table into one
// line. Each row gets a trailing <br>, and every cell after the first in a
// row is preceded by a "|" separator, so a status table becomes one line per
// row: "VM 100 | ok | 2 GiB".
func lineUpTables(doc *html.Node) {
	var rows []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.DataAtom == atom.Tr {
				rows = append(rows, c)
			}
			walk(c)
		}
	}
	walk(doc) // depth already bounded by maxHTMLDepth
	for _, tr := range rows {
		first := true
		for c := tr.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || (c.DataAtom != atom.Td && c.DataAtom != atom.Th) {
				continue
			}
			if !first {
				tr.InsertBefore(&html.Node{Type: html.TextNode, Data: " | "}, c)
			}
			first = false
		}
		tr.AppendChild(&html.Node{Type: html.ElementNode, DataAtom: atom.Br, Data: "br"})
	}
}

// stripTags is the last-resort HTML to text conversion: drop everything
// between < and >, drop <style> and <script> contents, decode entities and
// squeeze blank lines. Linear in the input.
func stripTags(src string) string {
	var sb strings.Builder
	sb.Grow(len(src) / 2)
	lower := asciiLower(src) // same length as src, unlike strings.ToLower
	for i := 0; i < len(src); {
		c := src[i]
		if c != '<' {
			j := strings.IndexByte(src[i:], '<')
			if j < 0 {
				j = len(src) - i
			}
			sb.WriteString(src[i : i+j])
			i += j
			continue
		}
		for _, skip := range [...]string{"style", "script"} {
			if strings.HasPrefix(lower[i+1:], skip) {
				if k := strings.Index(lower[i:], "</"+skip); k >= 0 {
					i += k
				}
				break
			}
		}
		j := strings.IndexByte(src[i:], '>')
		if j < 0 {
			break
		}
		tag := lower[i+1 : i+j]
		switch {
		case strings.HasPrefix(tag, "br") || strings.HasPrefix(tag, "/p") || strings.HasPrefix(tag, "/tr") ||
			strings.HasPrefix(tag, "/div") || strings.HasPrefix(tag, "/h") || strings.HasPrefix(tag, "/li"):
			sb.WriteByte('\n')
		case strings.HasPrefix(tag, "/td") || strings.HasPrefix(tag, "/th"):
			sb.WriteByte(' ') // keep table cells apart
		}
		i += j + 1
	}
	text := html.UnescapeString(sb.String())
	// Squeeze runs of blank lines and trailing blanks on each line.
	var out bytes.Buffer
	blank := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t")
		if strings.TrimSpace(line) == "" {
			blank++
			continue
		}
		if out.Len() > 0 {
			if blank > 0 {
				out.WriteString("\n\n")
			} else {
				out.WriteByte('\n')
			}
		}
		blank = 0
		out.WriteString(line)
	}
	return out.String()
}

// asciiLower lower-cases ASCII letters only, so byte offsets stay valid.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
