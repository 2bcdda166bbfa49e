package metastore

import (
	"context"
	"strings"
	"testing"

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
