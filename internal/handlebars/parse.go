package handlebars

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The template tree.
type node interface{ offset() int }

type textNode struct {
	off  int
	text string
}

type commentNode struct{ off int }

// exprNode is `{{x}}`, `{{{x}}}`, `{{&x}}` or `{{helper args}}`.
type exprNode struct {
	off  int
	call *call
	raw  bool // triple-stash or &: never escaped
}

// blockNode is `{{#helper args as |a b|}}body{{else}}inverse{{/helper}}`.
type blockNode struct {
	off         int
	call        *call
	blockParams []string
	body        []node
	inverse     []node
}

func (n *textNode) offset() int    { return n.off }
func (n *commentNode) offset() int { return n.off }
func (n *exprNode) offset() int    { return n.off }
func (n *blockNode) offset() int   { return n.off }

// call is what a tag or subexpression evaluates: either a helper with
// arguments, a bare path (which may still name a helper without
// arguments), or a parenthesised subexpression.
type call struct {
	helper   string // set for `helper arg...` forms and blocks
	path     *path  // set for a bare reference
	sub      *call  // set for `{{(sub expr)}}`
	params   []param
	hash     []hashArg
	hasArgs  bool
	rawIdent bool // helper came from an identifier (not a path)
}

type hashArg struct {
	key string
	val param
}

// param is a literal, a *path or a *call (subexpression).
type param interface{}

type literal struct{ v any }

// path is a reference such as `a.b`, `../x`, `@root.title`, `@index`,
// `this.[odd key]`.
type path struct {
	raw   string
	root  bool
	local bool // @name
	up    int
	segs  []seg
}

type seg struct {
	name    string
	bracket bool // [name]: never special
}

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

// scanner reads the inside of one tag. Blanks between tokens are allowed
// everywhere except inside paths and literals, as in handlebars-rust's
// grammar.
type scanner struct {
	src   string
	pos   int
	depth int
}

func (sc *scanner) eof() bool { return sc.pos >= len(sc.src) }

func (sc *scanner) peek() byte {
	if sc.eof() {
		return 0
	}
	return sc.src[sc.pos]
}

func (sc *scanner) ws() {
	for !sc.eof() && strings.IndexByte(" \t\r\n", sc.src[sc.pos]) >= 0 {
		sc.pos++
	}
}

func (sc *scanner) eat(b byte) bool {
	if sc.peek() == b && !sc.eof() {
		sc.pos++
		return true
	}
	return false
}

func (sc *scanner) eatStr(s string) bool {
	if strings.HasPrefix(sc.src[sc.pos:], s) {
		sc.pos += len(s)
		return true
	}
	return false
}

func (sc *scanner) errf(format string, args ...any) error {
	return errAt(sc.src, sc.pos, format, args...)
}

// isSymbol reports whether b may appear in an identifier or path segment:
// ASCII letters and digits, '-', '_', '$' and any non-ASCII character.
func isSymbol(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '-' || b == '_' || b == '$' || b >= 0x80
}

func (sc *scanner) identifier() string {
	start := sc.pos
	for !sc.eof() && isSymbol(sc.src[sc.pos]) {
		sc.pos++
	}
	return sc.src[start:sc.pos]
}

// keyword reports whether the input continues with word followed by a
// character that cannot extend it.
func (sc *scanner) keyword(word string) bool {
	if !strings.HasPrefix(sc.src[sc.pos:], word) {
		return false
	}
	next := sc.pos + len(word)
	return next >= len(sc.src) || !isSymbol(sc.src[next])
}

// exprBody parses the inside of `{{…}}`: `helper arg…` with at least one
// argument, or a name (path or subexpression).
func (sc *scanner) exprBody() (*call, error) {
	start := sc.pos
	if id := sc.identifier(); id != "" {
		cl := &call{helper: id, rawIdent: true}
		n, err := sc.args(cl, nil)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			cl.hasArgs = true
			return cl, nil
		}
		sc.pos = start
	}
	return sc.name()
}

// blockLine parses `helper arg… as |a b|` after `{{#` or `{{else`.
func (sc *scanner) blockLine() (*call, []string, error) {
	id := sc.identifier()
	if id == "" {
		return nil, nil, sc.errf("expected a helper name")
	}
	cl := &call{helper: id, rawIdent: true}
	var bp []string
	n, err := sc.args(cl, &bp)
	if err != nil {
		return nil, nil, err
	}
	cl.hasArgs = n > 0
	return cl, bp, nil
}

// name parses a subexpression or a path.
func (sc *scanner) name() (*call, error) {
	if sc.peek() == '(' {
		sub, err := sc.subexpr()
		if err != nil {
			return nil, err
		}
		return &call{sub: sub}, nil
	}
	p := sc.reference()
	if p == nil {
		return nil, sc.errf("expected a name or path")
	}
	return &call{path: p}, nil
}

// args parses `(hash | param)*`, then `as |a b|` when bp is not nil. It
// returns the number of params and hash arguments read.
func (sc *scanner) args(cl *call, bp *[]string) (int, error) {
	n := 0
	for {
		save := sc.pos
		sc.ws()
		if sc.eof() {
			sc.pos = save
			return n, nil
		}
		// hash: identifier '=' param
		hstart := sc.pos
		if id := sc.identifier(); id != "" {
			sc.ws()
			if sc.eat('=') {
				sc.ws()
				v, ok, err := sc.param()
				if err != nil {
					return 0, err
				}
				if !ok {
					return 0, sc.errf("expected a value after %s=", id)
				}
				cl.hash = append(cl.hash, hashArg{key: id, val: v})
				n++
				continue
			}
		}
		sc.pos = hstart
		if bp != nil && sc.keyword("as") {
			names, err := sc.blockParams()
			if err != nil {
				return 0, err
			}
			*bp = names
			return n, nil
		}
		v, ok, err := sc.param()
		if err != nil {
			return 0, err
		}
		if !ok {
			sc.pos = save
			return n, nil
		}
		cl.params = append(cl.params, v)
		n++
	}
}

// blockParams parses `as |a|` or `as |a b|`.
func (sc *scanner) blockParams() ([]string, error) {
	sc.pos += len("as")
	sc.ws()
	if !sc.eat('|') {
		return nil, sc.errf("expected | after as")
	}
	var names []string
	for len(names) < 2 {
		sc.ws()
		id := sc.identifier()
		if id == "" {
			break
		}
		names = append(names, id)
	}
	sc.ws()
	if len(names) == 0 || !sc.eat('|') {
		return nil, sc.errf("block parameters must be `as |name|` or `as |value key|`")
	}
	return names, nil
}

// param parses one argument: a literal, a path or a subexpression. ok is
// false (and nothing consumed) when no argument starts here; err is set
// when one starts but is malformed.
func (sc *scanner) param() (param, bool, error) {
	if sc.keyword("as") || sc.keyword("else") {
		return nil, false, nil
	}
	start := sc.pos
	v, ok, err := sc.literal()
	if err != nil {
		return nil, false, err
	}
	if ok {
		return literal{v}, true, nil
	}
	sc.pos = start
	if sc.peek() == '(' {
		sub, err := sc.subexpr()
		if err != nil {
			return nil, false, err
		}
		return sub, true, nil
	}
	if p := sc.reference(); p != nil {
		return p, true, nil
	}
	return nil, false, nil
}

// subexpr parses `(helper arg…)` or `(path)`.
func (sc *scanner) subexpr() (*call, error) {
	open := sc.pos
	sc.depth++
	defer func() { sc.depth-- }()
	if sc.depth > maxDepth {
		return nil, sc.errf("subexpressions nested deeper than %d", maxDepth)
	}
	sc.pos++ // (
	sc.ws()
	var cl *call
	start := sc.pos
	if id := sc.identifier(); id != "" {
		c := &call{helper: id, rawIdent: true}
		n, err := sc.args(c, nil)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			c.hasArgs = true
			cl = c
		} else {
			sc.pos = start
		}
	}
	if cl == nil {
		p := sc.reference()
		if p == nil {
			return nil, sc.errf("expected a helper or path after (")
		}
		cl = &call{path: p}
	}
	sc.ws()
	if !sc.eat(')') {
		return nil, errAt(sc.src, open, "subexpression is never closed (missing ))")
	}
	return cl, nil
}

// reference parses a path: [this. | ./] [@root.] [@] (../)* item (sep item)*
// where an item is a run of symbol characters or `[anything but ]]` and a
// separator is '.' or '/'. It returns nil, consuming nothing, when there is
// no path here.
func (sc *scanner) reference() *path {
	start := sc.pos
	src := sc.src
	isSep := func(i int) bool { return i < len(src) && (src[i] == '.' || src[i] == '/') }
	p := &path{}
	if strings.HasPrefix(src[sc.pos:], "this") && isSep(sc.pos+4) {
		sc.pos += 5
	} else if strings.HasPrefix(src[sc.pos:], "./") {
		sc.pos += 2
	}
	if strings.HasPrefix(src[sc.pos:], "@root") && isSep(sc.pos+5) {
		p.root = true
		sc.pos += 6
	}
	if sc.peek() == '@' {
		p.local = true
		sc.pos++
	}
	for strings.HasPrefix(src[sc.pos:], "..") && isSep(sc.pos+2) {
		p.up++
		sc.pos += 3
	}
	s, ok := sc.pathItem()
	if !ok {
		sc.pos = start
		return nil
	}
	p.segs = append(p.segs, s)
	for isSep(sc.pos) {
		save := sc.pos
		sc.pos++
		s, ok := sc.pathItem()
		if !ok {
			sc.pos = save
			break
		}
		p.segs = append(p.segs, s)
	}
	p.raw = src[start:sc.pos]
	return p
}

func (sc *scanner) pathItem() (seg, bool) {
	if sc.peek() == '[' {
		end := strings.IndexByte(sc.src[sc.pos+1:], ']')
		if end < 0 {
			return seg{}, false
		}
		s := seg{name: sc.src[sc.pos+1 : sc.pos+1+end], bracket: true}
		sc.pos += end + 2
		return s, true
	}
	id := sc.identifier()
	return seg{name: id}, id != ""
}

// literal parses a JSON-like literal as handlebars-rust's grammar delimits
// it (strings in double or single quotes, numbers, true, false, null,
// arrays, objects) and then decodes it as JSON, as handlebars-rust does:
// text that matches the grammar but is not valid JSON (`1.`, `01`, a raw
// control character in a string) is an error, not a path.
func (sc *scanner) literal() (any, bool, error) {
	start := sc.pos
	if !sc.skipLiteral() {
		sc.pos = start
		return nil, false, nil
	}
	text := sc.src[start:sc.pos]
	if text[0] == '\'' {
		// handlebars-rust turns 'x' into "x": \' becomes ', " becomes \".
		inner := text[1 : len(text)-1]
		inner = strings.ReplaceAll(inner, `\'`, `'`)
		inner = strings.ReplaceAll(inner, `"`, `\"`)
		text = `"` + inner + `"`
	}
	v, err := decodeJSON(text)
	if err != nil {
		return nil, false, errAt(sc.src, start, "invalid literal %s", truncate(sc.src[start:sc.pos], 40))
	}
	return v, true, nil
}

// skipLiteral advances over one literal as the grammar delimits it.
func (sc *scanner) skipLiteral() bool {
	sc.depth++
	defer func() { sc.depth-- }()
	if sc.depth > maxDepth {
		return false
	}
	src := sc.src
	switch c := sc.peek(); {
	case c == '"' || c == '\'':
		return sc.skipString(c)
	case c == '[':
		sc.pos++
		sc.ws()
		first := true
		for {
			if sc.eat(']') {
				return true
			}
			if !first {
				if !sc.eat(',') {
					return false
				}
				sc.ws()
			}
			save := sc.pos
			if !sc.skipLiteral() {
				// `[` literal? — the first element may be missing, so `[,1]`
				// matches the grammar (and then fails as JSON).
				sc.pos = save
				if !first {
					return false
				}
			}
			first = false
			sc.ws()
		}
	case c == '{':
		sc.pos++
		sc.ws()
		first := true
		for {
			if sc.eat('}') {
				return true
			}
			if !first {
				if !sc.eat(',') {
					return false
				}
				sc.ws()
			}
			save := sc.pos
			if q := sc.peek(); (q == '"' || q == '\'') && sc.skipString(q) {
				sc.ws()
				if !sc.eat(':') {
					return false
				}
				sc.ws()
				if !sc.skipLiteral() {
					return false
				}
			} else {
				sc.pos = save
				if !first {
					return false
				}
			}
			first = false
			sc.ws()
		}
	case c == '-' || c >= '0' && c <= '9':
		i := sc.pos
		if src[i] == '-' {
			i++
		}
		d := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
		if i < len(src) && src[i] == '.' {
			i++
		}
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i < len(src) && src[i] == 'E' {
			j := i + 1
			if j < len(src) && src[j] == '-' {
				j++
			}
			k := j
			for k < len(src) && src[k] >= '0' && src[k] <= '9' {
				k++
			}
			if k > j {
				i = k
			}
		}
		if i < len(src) && isSymbol(src[i]) {
			return false
		}
		sc.pos = i
		return true
	default:
		for _, w := range []string{"true", "false", "null"} {
			if sc.keyword(w) {
				sc.pos += len(w)
				return true
			}
		}
		return false
	}
}

// skipString advances over a quoted string whose escapes are JSON's (plus
// \' in single quotes).
func (sc *scanner) skipString(q byte) bool {
	src := sc.src
	i := sc.pos + 1
	for i < len(src) {
		switch c := src[i]; {
		case c == q:
			sc.pos = i + 1
			return true
		case c == '\\':
			if i+1 >= len(src) {
				return false
			}
			switch e := src[i+1]; {
			case e == q || strings.IndexByte(`\/bfnrt`, e) >= 0:
				i += 2
			case e == 'u':
				if i+6 > len(src) {
					return false
				}
				for _, h := range src[i+2 : i+6] {
					if !strings.ContainsRune("0123456789abcdefABCDEF", h) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default:
			i++
		}
	}
	return false
}

// decodeJSON decodes one JSON value into the package's value model, with
// integers kept exact as serde_json keeps them.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, strconv.ErrSyntax
	}
	return normalize(v, 0)
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
