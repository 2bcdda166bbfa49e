package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSourceClientRefusesPrivateAddressesUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "media") }))
	defer srv.Close()

	_, err := sourceHTTPClient(false).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "--allow-private-sources") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("guarded client fetching %s: err = %v, want a refusal naming the address and the flag", srv.URL, err)
	}
	resp, err := sourceHTTPClient(true).Get(srv.URL)
	if err != nil {
		t.Fatalf("unguarded client: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "media" {
		t.Fatalf("unguarded client read %q", body)
	}
}

func TestRefusePrivate(t *testing.T) {
	tests := []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1:80", true},
		{"[::1]:80", true},
		{"10.1.2.3:443", true},
		{"172.16.0.1:80", true},
		{"192.168.1.1:80", true},
		{"169.254.169.254:80", true}, // cloud metadata
		{"[fe80::1]:80", true},
		{"0.0.0.0:80", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"224.0.0.1:80", true},
		{"93.184.216.34:80", false},
		{"[2606:4700::1111]:443", false},
		{"not-an-address", true},
	}
	for _, tt := range tests {
		err := refusePrivate("tcp", tt.addr, nil)
		if (err != nil) != tt.refused {
			t.Errorf("refusePrivate(%s) = %v, want refused %v", tt.addr, err, tt.refused)
		}
	}
}
