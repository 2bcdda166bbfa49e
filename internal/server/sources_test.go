package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/ingest"
)

func TestSourceClientRefusesPrivateAddressesUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "media") }))
	defer srv.Close()

	_, err := sourceHTTPClient(false, Limits{}.sourceTimeouts()).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "--allow-private-sources") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("guarded client fetching %s: err = %v, want a refusal naming the address and the flag", srv.URL, err)
	}
	if !errors.Is(err, ingest.ErrPrivateAddress) || !ingest.IsPermanent(err) {
		t.Errorf("refusal %v does not wrap ingest.ErrPrivateAddress, so a live pull would retry it", err)
	}
	resp, err := sourceHTTPClient(true, Limits{}.sourceTimeouts()).Get(srv.URL)
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
		{"100.64.0.1:80", true},            // carrier-grade NAT
		{"100.127.255.254:80", true},       // carrier-grade NAT, last
		{"100.128.0.1:80", false},          // just past it
		{"0.1.2.3:80", true},               // "this network"
		{"192.0.0.8:80", true},             // IETF protocol assignments
		{"198.18.0.1:80", true},            // benchmarking
		{"198.19.255.255:80", true},        // benchmarking, last
		{"240.0.0.1:80", true},             // reserved
		{"255.255.255.255:80", true},       // broadcast
		{"[64:ff9b::7f00:1]:80", true},     // NAT64 of 127.0.0.1
		{"[64:ff9b::5db8:d822]:80", true},  // NAT64 of a public address: the gateway's choice, not ours
		{"[2002:7f00:1::1]:80", true},      // 6to4 of 127.0.0.1
		{"[2002:a00:1::1]:80", true},       // 6to4 of 10.0.0.1
		{"[::127.0.0.1]:80", true},         // IPv4-compatible
		{"[::10.0.0.1]:80", true},          // IPv4-compatible
		{"[::ffff:10.0.0.1]:80", true},     // IPv4-mapped
		{"[::ffff:0:a9fe:a9fe]:80", true},  // IPv4-translated 169.254.169.254
		{"[2001:0:4136:e378::1]:80", true}, // Teredo
		{"[fd00:ec2::254]:80", true},       // unique local (cloud metadata)
		{"[fe80::1%25eth0]:80", true},      // link-local with a zone
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

// The check runs on every connection, so a public URL that redirects to a
// private address is refused at the redirect.
func TestSourceClientRefusesARedirectToAPrivateAddress(t *testing.T) {
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "internal secret") }))
	defer private.Close()
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, private.URL+"/admin", http.StatusFound)
	}))
	defer public.Close()
	// Both listen on loopback: treat the first one's exact address as
	// public, the way a real public server would be.
	publicAddr := strings.TrimPrefix(public.URL, "http://")
	client := guardedHTTPClient(func(network, address string, c syscall.RawConn) error {
		if address == publicAddr {
			return nil
		}
		return refusePrivate(network, address, c)
	}, Limits{}.sourceTimeouts())
	resp, err := client.Get(public.URL)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("the redirect to %s was followed: %s", private.URL, body)
	}
	if !strings.Contains(err.Error(), "refusing to fetch a source from 127.0.0.1") {
		t.Fatalf("err = %v, want the redirect target refused", err)
	}
}

// A name is checked by the address it resolves to when dialled, not by
// how it looks.
func TestSourceClientRefusesANameResolvingToLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "media") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	_, err := sourceHTTPClient(false, Limits{}.sourceTimeouts()).Get("http://localhost:" + port + "/")
	if err == nil || !strings.Contains(err.Error(), "refusing to fetch a source from") {
		t.Fatalf("err = %v, want localhost refused by its resolved address", err)
	}
}

func TestSourceFetchesGiveUpOnAHostThatStopsAnswering(t *testing.T) {

	// A host that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// A host that sends headers and part of the body, then stalls.
	release := make(chan struct{})
	stalling := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer stalling.Close()
	defer close(release)

	for _, tc := range []struct {
		name, url, want string
		timeouts        sourceTimeouts
	}{
		{"no response headers", "http://" + silent.Addr().String() + "/a.mp4", "timeout awaiting response headers",
			sourceTimeouts{connect: 5 * time.Second, header: 500 * time.Millisecond, read: time.Minute}},
		{"body stalls", stalling.URL + "/a.mp4", "no data from the source for 500ms",
			sourceTimeouts{connect: 5 * time.Second, header: time.Minute, read: 500 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := sourceHTTPClient(true, tc.timeouts)
			errc := make(chan error, 1)
			go func() {
				resp, err := client.Get(tc.url)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("fetch error %v, want one saying %q", err, tc.want)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the fetch still waits after 60 s")
			}
		})
	}
}
