package schema

// MaxIDLen is the longest user or room id docs/protocol.md allows.
const MaxIDLen = 64

// MaxNonceLen is the longest nonce docs/protocol.md allows.
const MaxNonceLen = 64

// ValidID reports whether s is a valid user or room id: 1 to 64 characters of
// A-Z a-z 0-9 _ -. Such ids are safe to use verbatim as NATS subject tokens.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidNonce reports whether s is a valid nonce: 1 to 64 printable ASCII characters.
func ValidNonce(s string) bool {
	if len(s) == 0 || len(s) > MaxNonceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
