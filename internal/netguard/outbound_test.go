package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestOutboundRefusesPrivateAddressesUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	refused := Outbound{Hint: "allow it with --webhook-allow"}
	_, err := refused.HTTPClient(5 * time.Second).Get(srv.URL)
	if !errors.Is(err, ErrPrivateAddress) || !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "--webhook-allow") {
		t.Fatalf("GET %s with the default policy: %v; want a refusal naming the address and the hint", srv.URL, err)
	}

	allow, err := ParsePrefixes([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := Outbound{Allow: allow}.HTTPClient(5 * time.Second)
	resp, err := c.Get(srv.URL)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("GET with loopback allowed: %v, %v", resp, err)
	}
	resp.Body.Close()
	// A redirect is the answer, not followed.
	resp, err = c.Get(srv.URL + "/redirect")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("GET of a redirect: %v, %v; want the 302 itself", resp, err)
	}
	resp.Body.Close()

	for addr, want := range map[string]bool{"127.0.0.1": false, "10.1.2.3": false, "::1": false, "169.254.169.254": false,
		"::ffff:10.0.0.1": false, "100.64.0.1": false, "8.8.8.8": true, "2606:4700::1111": true} {
		err := Outbound{}.Check(netip.MustParseAddr(addr))
		if (err == nil) != want {
			t.Errorf("Check(%s) = %v, want allowed %v", addr, err, want)
		}
	}
	ten, _ := ParsePrefixes([]string{"10.0.0.0/8"})
	if err := (Outbound{Allow: ten}).Check(netip.MustParseAddr("10.9.9.9")); err != nil {
		t.Errorf("10.9.9.9 with 10.0.0.0/8 allowed: %v", err)
	}
	if err := (Outbound{AllowPrivate: true}).Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("AllowPrivate: %v", err)
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParsePrefixes took 10.0.0.0/33")
	}
}
