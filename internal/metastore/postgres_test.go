package metastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weir-media/weir/internal/testenv"
)

func TestPostgresContract(t *testing.T) {
	runContract(t, harness{fresh: func(t *testing.T) string { return testenv.Postgres(t) }})
}

func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	// Port 1 on loopback refuses at once.
	_, err := OpenPostgres(context.Background(), "postgres://weir:hunter2@127.0.0.1:1/meta?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("opened a store on a closed port")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the password: %v", err)
	}
	_, err = OpenPostgres(context.Background(), "postgres://weir:hunter2@127.0.0.1:notaport/meta")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL: error %v (must fail without the password)", err)
	}
}

// tcpProxy forwards connections from a loopback listener to target until
// cut is called, which closes the listener and every forwarded connection,
// as a database server that went away would.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestPostgresServerGoneIsErrUnavailable(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startTCPProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "5")
	u.RawQuery = q.Encode()
	s, err := OpenPostgres(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetStream(ctx, "vod-000000000000"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("through a working proxy: %v, want only ErrNotFound", err)
	}

	proxy.cut()
	// The first call may still find a pooled connection and see it break;
	// later ones fail to connect. Both mean the server cannot be reached.
	for i := range 3 {
		_, err := s.GetStream(ctx, "vod-000000000000")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
			t.Fatalf("call %d after the server went away: %v, want ErrUnavailable", i, err)
		}
	}
	if _, err := s.CreateStream(ctx, Stream{ID: "vod-000000000001", Kind: KindVOD, Status: StatusUploaded}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("create after the server went away: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ping after the server went away: %v, want ErrUnavailable", err)
	}
}

func TestMarkUnavailableLeavesQueryErrorsAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"not found", fmt.Errorf("stream x: %w", ErrNotFound), false},
		{"deadline", context.DeadlineExceeded, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"connection dropped", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := markUnavailable(tc.err)
			if errors.Is(got, ErrUnavailable) != tc.want {
				t.Fatalf("markUnavailable(%v) = %v, unavailable want %v", tc.err, got, tc.want)
			}
			if tc.err != nil && !errors.Is(got, tc.err) {
				t.Fatalf("markUnavailable(%v) = %v lost the original error", tc.err, got)
			}
		})
	}
}
