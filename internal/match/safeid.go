package match

// SafeID reports whether s has the shape of Proxmox's SAFE_ID:
// ^[A-Za-z0-9_][A-Za-z0-9._-]*$, of any length (a field name of
// match-field; section names add a length limit, config's validID).
func SafeID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
