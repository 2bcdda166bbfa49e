package metastore

import (
	"os"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// TestMain stops the PostgreSQL cluster the Postgres tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopPostgres()
	os.Exit(code)
}
