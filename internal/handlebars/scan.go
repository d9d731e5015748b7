package handlebars

import (
	"encoding/json"
	"strconv"
	"strings"
)

// This file holds the scanner of a tag's inside: names, paths, literals,
// hash arguments, block parameters and subexpressions, with handlebars-rust's
// grammar.

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
