package handlebars

// This file holds the template tree that Parse builds and Render walks.

// node is one piece of a template.
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
