package gateway

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/laneim/laneim/schema"
)

// presenceMsg is what gateways tell each other about their online users, JSON on the
// presence subjects (subjects.PresenceGatewayT and its siblings), so that
// `nats sub 'im.presence.>'` reads. Epoch is a random id of the gateway's process: a
// gateway restarted under the same id starts a new stream of seqs.
type presenceMsg struct {
	Kind  string `json:"k"`
	GW    string `json:"gw"`
	Epoch string `json:"e,omitempty"`
	// Seq numbers the gateway's changes: a delta carries the seq it makes, a
	// heartbeat and a snapshot the seq they are as of.
	Seq uint64 `json:"s,omitempty"`
	// On and Off are a delta's users who came online and went offline.
	On  []string `json:"on,omitempty"`
	Off []string `json:"off,omitempty"`
	// Users, Part and Parts are a snapshot's: part Part (from 0) of Parts.
	Users []string `json:"u,omitempty"`
	Part  int      `json:"p,omitempty"`
	Parts int      `json:"n,omitempty"`
}

// Kinds of presenceMsg.
const (
	presenceDelta     = "delta" // on PresenceGatewayT: changes, one seq
	presenceHeartbeat = "hb"    // on PresenceGatewayT: alive, as of seq
	presenceBye       = "bye"   // on PresenceGatewayT: stopping, drop its users
	presenceSync      = "sync"  // on PresenceSyncT(target): GW asks target's set
	presenceSnap      = "snap"  // on PresenceSnapT(asker): a part of GW's set
)

// maxSnapParts bounds a snapshot: 256 parts of presenceChunk users, a million users on
// one gateway.
const maxSnapParts = 256

// presenceChunk is the most users one delta or snapshot part names: 4,096 ids of 64
// characters stay within 300 KiB, below NATS's 1 MiB payload.
const presenceChunk = 4096

var errBadPresence = errors.New("bad presence message")

// decodePresence reads a presence message from another gateway. Gateways trust each
// other, but a message that fails these checks is dropped rather than believed: ids
// are what the protocol allows, a snapshot's parts are in range.
func decodePresence(data []byte) (presenceMsg, error) {
	var m presenceMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: %v", errBadPresence, err)
	}
	if !schema.ValidID(m.GW) {
		return m, fmt.Errorf("%w: gateway id %q", errBadPresence, m.GW)
	}
	switch m.Kind {
	case presenceDelta, presenceHeartbeat, presenceBye, presenceSync:
	case presenceSnap:
		if m.Parts < 1 || m.Parts > maxSnapParts || m.Part < 0 || m.Part >= m.Parts {
			return m, fmt.Errorf("%w: part %d of %d", errBadPresence, m.Part, m.Parts)
		}
	default:
		return m, fmt.Errorf("%w: kind %q", errBadPresence, m.Kind)
	}
	if len(m.On)+len(m.Off)+len(m.Users) > presenceChunk {
		return m, fmt.Errorf("%w: %d users", errBadPresence, len(m.On)+len(m.Off)+len(m.Users))
	}
	for _, list := range [][]string{m.On, m.Off, m.Users} {
		for _, u := range list {
			if !schema.ValidID(u) {
				return m, fmt.Errorf("%w: user id %q", errBadPresence, u)
			}
		}
	}
	return m, nil
}

func encodePresence(m presenceMsg) []byte {
	data, _ := json.Marshal(m) // strings and numbers only: cannot fail
	return data
}

// typingMsg is the payload of a room's typing subject.
type typingMsg struct {
	User string `json:"user"`
}

func decodeTyping(data []byte) (string, error) {
	var m typingMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return "", err
	}
	if !schema.ValidID(m.User) {
		return "", fmt.Errorf("typing: user id %q", m.User)
	}
	return m.User, nil
}
