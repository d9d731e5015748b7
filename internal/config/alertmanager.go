package config

import "strings"

// The alertmanager target (docs/alertmanager.md): every url is a member of
// one Alertmanager cluster and gets every alert; credentials live in the
// private file.
func init() {
	registerType("alertmanager", &typeDef{kind: kindTarget, keys: common(map[string]keyDef{
		"url":             {array: true, required: true, check: checkAlertmanagerURL},
		"label-field":     {array: true, check: checkLabelName},
		"resolve-after":   {check: checkDuration},
		"resend-interval": {check: checkDuration},
		"timeout":         {check: checkDuration},
		"ca-file":         {check: checkAbsPath},
		"username":        {},
	}), priv: map[string]keyDef{
		"password": {},
		"token":    {},
	}, secretKeys: []string{"password", "token"}, build: checkAlertmanager})
}

// checkAlertmanagerURL accepts an http(s) base URL without query or
// fragment: herald appends /api/v2/alerts.
func checkAlertmanagerURL(v string) string {
	if r := checkHTTPURL(v); r != "" {
		return r
	}
	if strings.ContainsAny(v, "?#") {
		return "must be the Alertmanager's base URL (herald adds /api/v2/alerts), without query or fragment"
	}
	return ""
}

// checkLabelName accepts a Prometheus label name that is not reserved.
func checkLabelName(v string) string {
	const rule = "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
	if v == "" || strings.HasPrefix(v, "__") {
		return rule
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return rule
		}
	}
	return ""
}

// checkAlertmanager checks what needs more than one value: one kind of
// credential, a password only with a username, no member twice.
func checkAlertmanager(d diags, s *Section, _ *Config) {
	_, hasPassword := s.Secret("password")
	_, hasToken := s.Secret("token")
	_, hasUser := s.Get("username")
	switch {
	case hasToken && (hasUser || hasPassword):
		d.errf(s.Line, "alertmanager target '%s': set either username and password (basic auth) or token (bearer), not both", s.Name)
	case hasPassword && !hasUser:
		d.errf(s.Line, "alertmanager target '%s': the private file has a password but there is no username", s.Name)
	case hasUser && !hasPassword:
		d.errf(s.LineOf("username"), "alertmanager target '%s' sets username but the private file has no password for it", s.Name)
	}
	seen := map[string]bool{}
	for _, u := range s.List("url") {
		if seen[u] {
			d.errf(s.Line, "alertmanager target '%s': url %q is given twice", s.Name, u)
		}
		seen[u] = true
	}
}
