package handlebars

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// frame is one block context: `{{#each}}` and `{{#with}}` push one, `{{#if}}`
// does not (as in handlebars-rust), so `../` counts each/with levels.
type frame struct {
	ctx    any
	locals map[string]any // @index, @key, @first, @last
	params map[string]any // block parameters (as |a b|)
}

type renderer struct {
	src    string
	opt    RenderOptions
	root   any
	frames []frame
	out    strings.Builder
	depth  int
}

func (r *renderer) errAt(n node, format string, args ...any) error {
	return errAt(r.src, n.offset(), format, args...)
}

func (r *renderer) write(n node, s string) error {
	if r.out.Len()+len(s) > maxOutput {
		return r.errAt(n, "output larger than %d bytes", maxOutput)
	}
	r.out.WriteString(s)
	return nil
}

func (r *renderer) nodes(list []node) error {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > 4*maxDepth {
		return fmt.Errorf("handlebars: rendering nested deeper than %d", 4*maxDepth)
	}
	for _, n := range list {
		var err error
		switch n := n.(type) {
		case *textNode:
			err = r.write(n, n.text)
		case *commentNode:
		case *exprNode:
			err = r.expr(n)
		case *blockNode:
			err = r.block(n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// result is an evaluated expression: its value and whether it must bypass
// the escape function (output of url-encode/json/escape, Raw results).
type result struct {
	v   any
	raw bool
}

func (r *renderer) expr(n *exprNode) error {
	res, err := r.eval(n, n.call)
	if err != nil {
		return err
	}
	s := display(res.v)
	if r.opt.Escape != nil && !n.raw && !res.raw {
		s = r.opt.Escape(s)
	}
	return r.write(n, s)
}

// eval evaluates a tag's or subexpression's call.
func (r *renderer) eval(n node, c *call) (result, error) {
	switch {
	case c.sub != nil:
		return r.eval(n, c.sub)
	case c.path != nil:
		// A bare name that is a helper calls it without arguments, as
		// handlebars-rust does (so `{{json}}` is an error, not a field).
		if h, ok := r.helper(c.path.raw); ok {
			return r.callHelper(n, c.path.raw, h, nil, nil)
		}
		return result{v: r.resolve(c.path)}, nil
	}
	if blockOnly[c.helper] {
		// handlebars-rust calls the block helper without a template: it
		// checks its argument and writes nothing.
		if len(c.params) == 0 {
			return result{}, r.errAt(n, "param not found for helper %q", c.helper)
		}
		return result{v: ""}, nil
	}
	h, ok := r.helper(c.helper)
	if !ok {
		return result{}, r.errAt(n, "helper not found: %q", c.helper)
	}
	args, hash, err := r.args(n, c)
	if err != nil {
		return result{}, err
	}
	return r.callHelper(n, c.helper, h, args, hash)
}

func (r *renderer) args(n node, c *call) ([]any, map[string]any, error) {
	args := make([]any, len(c.params))
	for i, p := range c.params {
		v, err := r.param(n, p)
		if err != nil {
			return nil, nil, err
		}
		args[i] = v
	}
	var hash map[string]any
	if len(c.hash) > 0 {
		hash = make(map[string]any, len(c.hash))
		for _, h := range c.hash {
			v, err := r.param(n, h.val)
			if err != nil {
				return nil, nil, err
			}
			hash[h.key] = v
		}
	}
	return args, hash, nil
}

func (r *renderer) param(n node, p param) (any, error) {
	switch p := p.(type) {
	case literal:
		return p.v, nil
	case *path:
		return r.resolve(p), nil
	case *call:
		res, err := r.eval(n, p)
		return res.v, err
	}
	return nil, nil
}

// helper looks name up in the caller's Funcs, then the built-ins.
func (r *renderer) helper(name string) (helperDef, bool) {
	if f, ok := r.opt.Funcs[name]; ok {
		return helperDef{fn: func(args []any, hash map[string]any) (any, error) {
			v, err := f(args, hash)
			if err != nil {
				return nil, err
			}
			if raw, ok := v.(Raw); ok {
				return raw, nil
			}
			return normalize(v, 0)
		}}, true
	}
	if blockOnly[name] {
		return helperDef{fn: func([]any, map[string]any) (any, error) {
			return nil, fmt.Errorf("param not found for helper %q", name)
		}}, true
	}
	h, ok := builtins[name]
	return h, ok
}

func (r *renderer) callHelper(n node, name string, h helperDef, args []any, hash map[string]any) (result, error) {
	v, err := h.fn(args, hash)
	if err != nil {
		return result{}, r.errAt(n, "%v", err)
	}
	if raw, ok := v.(Raw); ok {
		return result{v: string(raw), raw: true}, nil
	}
	return result{v: v, raw: h.raw}, nil
}

func (r *renderer) block(n *blockNode) error {
	c := n.call
	switch c.helper {
	case "if", "unless":
		if len(c.params) == 0 {
			return r.errAt(n, "param not found for helper %q", c.helper)
		}
		args, hash, err := r.args(n, c)
		if err != nil {
			return err
		}
		includeZero, _ := hash["includeZero"].(bool)
		cond := truthy(args[0], includeZero)
		if c.helper == "unless" {
			cond = !cond
		}
		if cond {
			return r.nodes(n.body)
		}
		return r.nodes(n.inverse)
	case "with":
		if len(c.params) == 0 {
			return r.errAt(n, "param not found for helper %q", c.helper)
		}
		v, err := r.param(n, c.params[0])
		if err != nil {
			return err
		}
		if !truthy(v, false) {
			return r.nodes(n.inverse)
		}
		f := frame{ctx: v}
		if len(n.blockParams) > 0 {
			f.params = map[string]any{n.blockParams[0]: v}
		}
		return r.inFrame(f, n.body)
	case "each":
		if len(c.params) == 0 {
			return r.errAt(n, "param not found for helper %q", c.helper)
		}
		v, err := r.param(n, c.params[0])
		if err != nil {
			return err
		}
		return r.each(n, v)
	}
	if _, ok := r.opt.Funcs[c.helper]; !ok && builtins[c.helper].fn == nil {
		return r.errAt(n, "helper not found: %q", c.helper)
	}
	res, err := r.eval(n, c)
	if err != nil {
		return err
	}
	h, _ := r.helper(c.helper)
	if h.raw {
		// proxmox-notify's url-encode/json/escape write their output and
		// ignore a block body.
		return r.write(n, display(res.v))
	}
	if truthy(res.v, false) {
		return r.nodes(n.body)
	}
	return r.nodes(n.inverse)
}

func (r *renderer) inFrame(f frame, body []node) error {
	r.frames = append(r.frames, f)
	err := r.nodes(body)
	r.frames = r.frames[:len(r.frames)-1]
	return err
}

// each iterates arrays in order and objects in key order (serde_json's
// BTreeMap), setting @index, @first, @last and, for objects, @key.
func (r *renderer) each(n *blockNode, v any) error {
	if !truthy(v, false) {
		return r.nodes(n.inverse)
	}
	bp := n.blockParams
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			f := frame{ctx: e, locals: map[string]any{
				"index": int64(i), "first": i == 0, "last": i == len(x)-1,
			}}
			if len(bp) > 0 {
				f.params = map[string]any{bp[0]: e}
				if len(bp) > 1 {
					f.params[bp[1]] = int64(i)
				}
			}
			if err := r.inFrame(f, n.body); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			f := frame{ctx: x[k], locals: map[string]any{
				"key": k, "index": int64(i), "first": i == 0, "last": i == len(keys)-1,
			}}
			if len(bp) > 0 {
				f.params = map[string]any{bp[0]: x[k]}
				if len(bp) > 1 {
					f.params[bp[1]] = k
				}
			}
			if err := r.inFrame(f, n.body); err != nil {
				return err
			}
		}
		return nil
	}
	return r.errAt(n, "each: %s is not iterable", typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return "a number"
	}
	return "the value"
}

// resolve looks a path up; anything missing is nil (non-strict mode).
func (r *renderer) resolve(p *path) any {
	segs := p.segs
	var base any
	switch {
	case p.root:
		base = r.root
	case p.local:
		i := len(r.frames) - 1 - p.up
		if i < 0 || len(segs) == 0 {
			return nil
		}
		v, ok := r.frames[i].locals[segs[0].name]
		if !ok {
			return nil
		}
		base, segs = v, segs[1:]
	default:
		found := false
		if p.up == 0 && len(segs) > 0 && !(segs[0].name == "this" && !segs[0].bracket) {
			for i := len(r.frames) - 1; i >= 0; i-- {
				if v, ok := r.frames[i].params[segs[0].name]; ok {
					base, segs, found = v, segs[1:], true
					break
				}
			}
		}
		if !found {
			i := len(r.frames) - 1 - p.up
			if i < 0 {
				return nil
			}
			base = r.frames[i].ctx
		}
	}
	for _, s := range segs {
		if s.name == "this" && !s.bracket {
			continue
		}
		switch x := base.(type) {
		case map[string]any:
			base = x[s.name]
		case []any:
			i, err := strconv.ParseUint(s.name, 10, 64)
			if err != nil || i >= uint64(len(x)) {
				return nil
			}
			base = x[i]
		default:
			return nil
		}
	}
	return base
}
