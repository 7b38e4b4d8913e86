package gateway

import (
	"reflect"
	"testing"

	"github.com/laneim/laneim/nodes"
)

func TestGatewayEntries(t *testing.T) {
	got := gatewayEntries([]nodes.Info{
		{ID: "l", Role: "logic", Address: "10.0.0.9:1"},
		{ID: "a", Role: "gateway", Address: "10.0.0.1:8080", Connections: 7},
		{ID: "b", Role: "gateway", Address: "https://chat.example.com/", Connections: 2},
		{ID: "c", Role: "gateway", Connections: 0}, // no address: unreachable
		{ID: "d", Role: "gateway", Address: "http://10.0.0.2:8080", Connections: 2},
	})
	want := []GatewayEntry{
		{URL: "http://10.0.0.2:8080", Connections: 2},
		{URL: "https://chat.example.com", Connections: 2},
		{URL: "http://10.0.0.1:8080", Connections: 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := gatewayEntries(nil); got == nil || len(got) != 0 {
		t.Fatalf("no nodes: %#v, want an empty list", got)
	}
}
