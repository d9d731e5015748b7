package config

// RevealSecrets returns every secret value of the private file (each
// private property's value, and for webhook `secret name=N,value=BASE64`
// lines also the decoded value), for masking them in text that leaves a
// target: the daemon masks them in the delivery-failed event it sends to
// every other target, whatever a server echoed. Never print the result.
func (c *Config) RevealSecrets() []string {
	var out []string
	add := func(s *Section) {
		for _, p := range s.priv {
			if v := p.value.Reveal(); v != "" {
				out = append(out, v)
			}
			if _, v, reason := parseNameValue(p.value.Reveal(), true); reason == "" && v != "" {
				out = append(out, v)
			}
		}
	}
	for _, s := range c.Targets {
		add(s)
	}
	for _, s := range c.Herald {
		add(s)
	}
	return out
}
