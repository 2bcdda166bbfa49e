package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// levelTrace is below slog.LevelDebug: kfake and kgo debug output (every
// request, every fetch) is only useful when chasing a protocol problem.
const levelTrace = slog.LevelDebug - 4

// kgoLogger adapts a *slog.Logger to kgo.Logger.
//
// kgo's info level narrates connections and group membership changes many
// times a minute, so it is logged at slog's debug level; kgo warnings and
// errors keep their level.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, levelTrace):
		return kgo.LogLevelDebug
	case k.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	default:
		return kgo.LogLevelNone
	}
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	k.l.Log(context.Background(), kgoToSlog(level), msg, keyvals...)
}

func kgoToSlog(level kgo.LogLevel) slog.Level {
	switch level {
	case kgo.LogLevelError:
		return slog.LevelError
	case kgo.LogLevelWarn:
		return slog.LevelWarn
	case kgo.LogLevelInfo:
		return slog.LevelDebug
	default:
		return levelTrace
	}
}

// kfakeLogger adapts a *slog.Logger to kfake.Logger and remembers the
// errors kfake logs while the broker shuts down: kfake's Close returns
// nothing and reports a failed final save only through its logger, and
// Broker.Close must return that failure instead of dropping it.
type kfakeLogger struct {
	l *slog.Logger

	mu        sync.Mutex
	capturing bool
	captured  []error
}

func (k *kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
		k.mu.Lock()
		if k.capturing {
			k.captured = append(k.captured, fmt.Errorf("embedded broker: %s", msg))
		}
		k.mu.Unlock()
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelDebug
	default:
		sl = levelTrace
	}
	k.l.Log(context.Background(), sl, msg, "component", "kafka-broker")
}

// captureErrors starts recording error-level messages.
func (k *kfakeLogger) captureErrors() {
	k.mu.Lock()
	k.capturing = true
	k.mu.Unlock()
}

// capturedErrors returns the errors recorded since captureErrors.
func (k *kfakeLogger) capturedErrors() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]error(nil), k.captured...)
}
