package schema

import "bytes"

// PeekFrame finds a client frame's op and rid without decoding it: a single pass over
// the top-level object that skips every other value. The gateway uses it to refuse a
// frame over the rate limit at the cost of a scan, where ParseFrame's full decode
// would cost as much as serving it.
//
// ok is false for anything it does not read exactly as ParseFrame would: not an
// object, an op that is not a plain string, a key written with escapes or in another
// case than "op" and "rid" (encoding/json matches keys regardless of case), a key
// twice, a syntax error before op and rid are known. The caller then parses the frame
// in full. rid is nil without one, or when it is not a non-negative integer (which
// ParseFrame refuses, answering without the rid).
func PeekFrame(data []byte) (op, rid []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil, nil, false // no op
	}
	var haveOp, haveRid bool
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, nil, false
		}
		end := skipString(data, i)
		if end < 0 {
			return nil, nil, false
		}
		key := data[i+1 : end-1]
		if !plainASCII(key) {
			return nil, nil, false // escapes, or letters encoding/json may fold to op or rid
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, nil, false
		}
		i = skipSpace(data, i+1)
		vEnd := skipValue(data, i, 0)
		if vEnd < 0 {
			return nil, nil, false
		}
		value := data[i:vEnd]
		switch {
		case string(key) == "op":
			if haveOp || len(value) < 2 || value[0] != '"' || !plainASCII(value[1:len(value)-1]) {
				return nil, nil, false
			}
			op, haveOp = value[1:len(value)-1], true
		case string(key) == "rid":
			if haveRid {
				return nil, nil, false
			}
			haveRid = true
			if validRid(value) {
				rid = value
			}
		case bytes.EqualFold(key, []byte("op")) || bytes.EqualFold(key, []byte("rid")):
			return nil, nil, false
		}
		i = skipSpace(data, vEnd)
		if i >= len(data) {
			return nil, nil, false
		}
		if data[i] == '}' {
			if !haveOp || len(op) == 0 {
				return nil, nil, false
			}
			if skipSpace(data, i+1) != len(data) {
				return nil, nil, false
			}
			return op, rid, true
		}
		if data[i] != ',' {
			return nil, nil, false
		}
		i = skipSpace(data, i+1)
	}
}

// plainASCII reports whether s is printable ASCII without backslashes: read the same
// byte for byte as decoded.
func plainASCII(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'), or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		default:
			if b[j] < 0x20 {
				return -1
			}
		}
	}
	return -1
}

// maxPeekDepth bounds the nesting skipValue follows; deeper frames go to ParseFrame.
const maxPeekDepth = 64

// skipValue returns the index after the JSON value starting at b[i], or -1. It checks
// the structure (brackets, strings, commas) but not the literals' spelling; ParseFrame
// still decodes whatever the caller goes on to serve.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) || depth > maxPeekDepth {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = skipString(b, i); i < 0 {
					return -1
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == closer {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	default:
		// A number or a literal: up to the next delimiter.
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			if b[j] == '"' || b[j] == '{' || b[j] == '[' || b[j] == ':' {
				return -1
			}
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}
