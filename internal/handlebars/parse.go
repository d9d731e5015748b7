package handlebars

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parse parses src. Errors carry the line and column of the offending tag.
func Parse(src string) (*Template, error) {
	c := &compiler{src: src}
	if err := c.run(); err != nil {
		return nil, err
	}
	return &Template{src: src, nodes: c.root}, nil
}

// openBlock is a block whose closing tag has not been seen yet.
type openBlock struct {
	n       *blockNode
	name    string
	inElse  bool
	chained bool // opened by `{{else helper …}}`: closed with its parent
}

// compiler turns the token stream into the tree, reproducing the
// whitespace decisions of handlebars-rust's Template::compile2.
type compiler struct {
	src   string
	root  []node
	stack []*openBlock

	// omitPro is set by a tag ending in `~}}`: the next text loses its
	// leading whitespace (a whitespace-only gap disappears entirely).
	omitPro bool
	// trimLine is set by a standalone tag: the next text loses its leading
	// blanks and first line break.
	trimLine bool
}

// cur is the node list that new elements go to.
func (c *compiler) cur() *[]node {
	if len(c.stack) == 0 {
		return &c.root
	}
	b := c.stack[len(c.stack)-1]
	if b.inElse {
		return &b.n.inverse
	}
	return &b.n.body
}

func (c *compiler) push(n node) {
	l := c.cur()
	*l = append(*l, n)
}

// trimPrevious applies `{{~`: the text just before loses trailing Unicode
// whitespace (only if the previous element is text).
func (c *compiler) trimPrevious() {
	l := *c.cur()
	if len(l) == 0 {
		return
	}
	if t, ok := l[len(l)-1].(*textNode); ok {
		t.text = strings.TrimRightFunc(t.text, unicode.IsSpace)
	}
}

// standalone reports whether the tag at [start,end) is alone on its line
// (only blanks before it since the last line break or the template start,
// and blanks then a line break after it). If so the blanks before it are
// removed from the previous text, and the caller must strip the rest of the
// line from the next text. As in handlebars-rust 5, a tag followed by the
// end of the template is never standalone.
func (c *compiler) standalone(start, end int) bool {
	after := strings.TrimLeft(c.src[end:], " \t")
	if !strings.HasPrefix(after, "\n") && !strings.HasPrefix(after, "\r") {
		return false
	}
	before := strings.TrimRight(c.src[:start], " \t")
	leading := before == "" || strings.HasSuffix(before, "\n") || strings.HasSuffix(before, "\r")
	if leading {
		l := *c.cur()
		if len(l) > 0 {
			if t, ok := l[len(l)-1].(*textNode); ok {
				t.text = strings.TrimRight(t.text, " \t")
			}
		}
	}
	return start == 0 || leading
}

// text adds the literal text between two tags. raw is the source slice,
// text the same with escape backslashes removed.
func (c *compiler) text(off int, raw, text string) {
	if raw == "" {
		return
	}
	switch {
	case c.omitPro:
		// handlebars-rust's parser skips a whitespace-only gap after a `~}}`
		// tag without emitting anything, which also leaves a pending
		// standalone strip for the next text.
		if strings.Trim(raw, " \t\r\n") == "" {
			return
		}
		text = strings.TrimLeftFunc(text, unicode.IsSpace)
	case c.trimLine:
		text = strings.TrimLeft(text, " \t")
		if strings.HasPrefix(text, "\r\n") {
			text = text[2:]
		} else if strings.HasPrefix(text, "\n") {
			text = text[1:]
		}
	}
	c.trimLine = false
	c.push(&textNode{off: off, text: text})
}

func (c *compiler) run() error {
	p := 0
	for {
		end, text := scanText(c.src, p)
		c.text(p, c.src[p:end], text)
		if end >= len(c.src) {
			break
		}
		next, err := c.tag(end)
		if err != nil {
			return err
		}
		p = next
	}
	if len(c.stack) > 0 {
		b := c.stack[0]
		return errAt(c.src, b.n.off, "block {{#%s}} is never closed", b.name)
	}
	return nil
}

// scanText returns the end of the literal text starting at p (the next
// live `{{`, or the end of src) and the text with escapes resolved:
// `\{{` (and `\{{{{`) stand for themselves without the backslash, and a run
// of two or more backslashes before `{{` loses its first backslash while the
// tag stays live (handlebars-rust's `escape` rule).
func scanText(src string, p int) (int, string) {
	var b strings.Builder
	i, flushed := p, p
	for i < len(src) {
		switch {
		case src[i] == '\\' && strings.HasPrefix(src[i+1:], "{{"):
			b.WriteString(src[flushed:i])
			n := 2
			if strings.HasPrefix(src[i+3:], "{{") {
				n = 4
			}
			b.WriteString(src[i+1 : i+1+n])
			i += 1 + n
			flushed = i
		case src[i] == '\\':
			j := i + 1
			for j < len(src) && src[j] == '\\' {
				j++
			}
			if j-i >= 2 && strings.HasPrefix(src[j:], "{{") {
				b.WriteString(src[flushed:i])
				b.WriteString(src[i+1 : j])
				return j, b.String()
			}
			i = j
		case strings.HasPrefix(src[i:], "{{"):
			b.WriteString(src[flushed:i])
			return i, b.String()
		default:
			i++
		}
	}
	b.WriteString(src[flushed:])
	return len(src), b.String()
}

// Tag kinds.
const (
	kExpr  = iota // {{x}}, {{{x}}}, {{helper x}}
	kOpen         // {{#helper x}}
	kClose        // {{/helper}}
	kElse         // {{else}}, {{^}}, {{else helper x}}
)

// tag parses the tag starting at s (src[s:] begins with "{{"), applies it
// to the tree and returns the offset just after it.
func (c *compiler) tag(s int) (int, error) {
	src := c.src
	if strings.HasPrefix(src[s+2:], "!") {
		end, ok := commentEnd(src, s+3)
		if !ok {
			return 0, errAt(src, s, "comment is never closed (missing }})")
		}
		c.trimLine = c.standalone(s, end)
		c.push(&commentNode{off: s})
		return end, nil
	}

	sc := &scanner{src: src, pos: s + 2}
	sc.ws()
	omitPre := sc.eat('~')
	sc.ws()
	if sc.eof() {
		return 0, errAt(src, s, "tag is never closed (missing }})")
	}
	var (
		kind  int
		cl    *call
		bp    []string
		raw   bool
		ident string
		err   error
	)
	switch ch := src[sc.pos]; {
	case ch == '{':
		sc.pos++
		sc.ws()
		if !omitPre {
			omitPre = sc.eat('~')
			sc.ws()
		}
		if cl, err = sc.exprBody(); err != nil {
			return 0, err
		}
		raw = true
		sc.ws()
		if sc.eat('~') {
			sc.ws()
			if !sc.eatStr("}}}") {
				return 0, sc.errf("expected }}} to close {{{")
			}
			return c.apply(s, sc.pos, kExpr, omitPre, true, cl, nil, "", raw)
		}
		if !sc.eat('}') {
			return 0, sc.errf("expected }}} to close {{{")
		}
		sc.ws()
		omitPro := sc.eat('~')
		sc.ws()
		if !sc.eatStr("}}") {
			return 0, sc.errf("expected }}} to close {{{")
		}
		return c.apply(s, sc.pos, kExpr, omitPre, omitPro, cl, nil, "", raw)
	case ch == '&':
		sc.pos++
		sc.ws()
		if cl, err = sc.name(); err != nil {
			return 0, err
		}
		raw = true
	case ch == '#':
		sc.pos++
		sc.ws()
		if !sc.eof() && (src[sc.pos] == '>' || src[sc.pos] == '*') {
			return 0, errAt(src, s, "partials and decorators are not supported")
		}
		kind = kOpen
		if cl, bp, err = sc.blockLine(); err != nil {
			return 0, err
		}
		ident = cl.helper
	case ch == '/':
		sc.pos++
		sc.ws()
		kind = kClose
		if ident = sc.identifier(); ident == "" {
			return 0, sc.errf("expected a helper name after {{/")
		}
	case ch == '>' || ch == '*':
		return 0, errAt(src, s, "partials and decorators are not supported")
	case ch == '^' || sc.keyword("else"):
		if ch == '^' {
			sc.pos++
		} else {
			sc.pos += len("else")
		}
		kind = kElse
		save := sc.pos
		sc.ws()
		if sc.identifier() != "" {
			// `{{else if x}}`: a chained block as the whole inverse.
			sc.pos = save
			sc.ws()
			if cl, bp, err = sc.blockLine(); err != nil {
				return 0, err
			}
			ident = cl.helper
		} else {
			sc.pos = save
		}
	case ch == '!':
		return 0, errAt(src, s, "a comment must start with {{! (no ~ or space before !)")
	default:
		if cl, err = sc.exprBody(); err != nil {
			return 0, err
		}
	}
	sc.ws()
	omitPro := sc.eat('~')
	sc.ws()
	if !sc.eatStr("}}") {
		return 0, sc.errf("expected }} to close the tag opened at line %d", lineOf(src, s))
	}
	return c.apply(s, sc.pos, kind, omitPre, omitPro, cl, bp, ident, raw)
}

// apply adds a parsed tag to the tree.
func (c *compiler) apply(s, end, kind int, omitPre, omitPro bool, cl *call, bp []string, ident string, raw bool) (int, error) {
	if omitPre {
		c.trimPrevious()
	}
	c.omitPro = omitPro
	switch kind {
	case kExpr:
		c.push(&exprNode{off: s, call: cl, raw: raw})
	case kOpen:
		if len(c.stack) >= maxDepth {
			return 0, errAt(c.src, s, "blocks nested deeper than %d", maxDepth)
		}
		c.trimLine = c.standalone(s, end)
		b := &blockNode{off: s, call: cl, blockParams: bp}
		c.push(b)
		c.stack = append(c.stack, &openBlock{n: b, name: ident})
	case kElse:
		if len(c.stack) == 0 {
			return 0, errAt(c.src, s, "{{else}} outside a block")
		}
		top := c.stack[len(c.stack)-1]
		if top.inElse {
			return 0, errAt(c.src, s, "second {{else}} in block {{#%s}}", top.name)
		}
		c.trimLine = c.standalone(s, end)
		top.inElse = true
		if cl != nil {
			if len(c.stack) >= maxDepth {
				return 0, errAt(c.src, s, "blocks nested deeper than %d", maxDepth)
			}
			b := &blockNode{off: s, call: cl, blockParams: bp}
			top.n.inverse = append(top.n.inverse, b)
			c.stack = append(c.stack, &openBlock{n: b, name: top.name, chained: true})
		}
	case kClose:
		if len(c.stack) == 0 {
			return 0, errAt(c.src, s, "{{/%s}} closes nothing", ident)
		}
		c.trimLine = c.standalone(s, end)
		for len(c.stack) > 1 && c.stack[len(c.stack)-1].chained {
			c.stack = c.stack[:len(c.stack)-1]
		}
		top := c.stack[len(c.stack)-1]
		if top.name != ident {
			return 0, errAt(c.src, s, "{{/%s}} does not match {{#%s}} at line %d", ident, top.name, lineOf(c.src, top.n.off))
		}
		c.stack = c.stack[:len(c.stack)-1]
	}
	return end, nil
}

func lineOf(src string, off int) int {
	l, _ := position(src, off)
	return l
}

// commentEnd finds the end of a comment whose text starts at p (just after
// "{{!"): `{{!-- … --}}` may contain "}}", `{{! … }}` may not.
func commentEnd(src string, p int) (int, bool) {
	q := p
	for q < len(src) && strings.IndexByte(" \t\r\n", src[q]) >= 0 {
		q++
	}
	if strings.HasPrefix(src[q:], "--") {
		if i := strings.Index(src[q+2:], "--}}"); i >= 0 {
			return q + 2 + i + 4, true
		}
	}
	if i := strings.Index(src[p:], "}}"); i >= 0 {
		return p + i + 2, true
	}
	return 0, false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
