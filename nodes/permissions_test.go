package nodes

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/subjects"
)

// TestRolesUseTheBucket: with nothing but their own NATS permissions, a pusher, a cdc
// and a gateway register themselves (whichever comes first creates the bucket) and the
// gateway lists the live nodes, as GET /v1/gateways does.
func TestRolesUseTheBucket(t *testing.T) {
	var users []embednats.User
	for _, role := range []string{subjects.RolePusher, subjects.RoleCDC, subjects.RoleGateway} {
		perms := subjects.RolePermissions(role)
		users = append(users, embednats.User{Name: role, Password: role + "-password",
			Publish: perms.Publish, Subscribe: perms.Subscribe, Responses: perms.Responses})
	}
	srv, err := embednats.Start(embednats.Options{Memory: true, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	connect := func(role string) jetstream.JetStream {
		nc, err := srv.Connect(nats.UserInfo(role, role+"-password"), nats.CustomInboxPrefix(subjects.InboxPrefixT(role)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	pusher, cdc, gateway := connect(subjects.RolePusher), connect(subjects.RoleCDC), connect(subjects.RoleGateway)
	for _, r := range []struct {
		js   jetstream.JetStream
		info Info
	}{
		// The gateway first: it creates the bucket when it starts before the others.
		{gateway, Info{ID: "g1", Role: "gateway", Address: "http://127.0.0.1:8080"}},
		{pusher, Info{ID: "p1", Role: "pusher"}},
		{cdc, Info{ID: "c1", Role: "cdc"}},
	} {
		reg, err := Register(ctx, r.js, r.info, Config{TTL: 5 * time.Second})
		if err != nil {
			t.Fatalf("%s registers: %v", r.info.Role, err)
		}
		defer reg.Stop()
	}
	list, err := List(ctx, gateway)
	if err != nil {
		t.Fatalf("the gateway lists the nodes: %v", err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %+v", list)
	}
}
