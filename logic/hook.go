package logic

import (
	"context"

	"github.com/laneim/laneim/schema"
)

// membersCheck answers the notifier (package notify): which of the (room, user) pairs
// of a batch of mentions are memberships, in one call to the metadata store (the
// cache answers many at once). Mentions of non-members are dropped there, off the
// send path.
func (l *Logic) membersCheck(ctx context.Context, _ string, data []byte) (any, error) {
	var req schema.MembersCheckReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if len(req.Pairs) > schema.MaxMembersCheck {
		return nil, schema.Errorf(schema.CodeBadRequest, "at most %d pairs", schema.MaxMembersCheck)
	}
	members := make(map[[2]string]bool, len(req.Pairs))
	var pairs [][2]string
	for _, p := range req.Pairs {
		if err := checkIDs(p[0], p[1]); err != nil {
			return nil, err
		}
		if _, seen := members[p]; !seen {
			members[p] = false
			pairs = append(pairs, p)
		}
	}
	if err := l.checkMembers(ctx, pairs, members); err != nil {
		return nil, err
	}
	reply := schema.MembersCheckReply{Members: make([]bool, len(req.Pairs))}
	for i, p := range req.Pairs {
		reply.Members[i] = members[p]
	}
	return reply, nil
}
