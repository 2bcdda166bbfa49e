package engines

import (
	"errors"
	"strings"
	"testing"

	"github.com/weir-media/weir/engine"
)

// FuzzLevelsLogLines feeds arbitrary ffmpeg log lines to the loudness,
// silence and black engines' log readers: whatever ffmpeg (or an input
// crafted to upset it) prints, they must not panic or break the
// Emitter's timing rules.
func FuzzLevelsLogLines(f *testing.F) {
	for _, seed := range []string{
		"[Parsed_ebur128_0 @ 0x1] t: 4.69998    TARGET:-23 LUFS    M: -21.1 S: -21.1     I: -21.1 LUFS       LRA:   0.0 LU  FTPK: -21.1 -21.1 dBFS  TPK: -21.1 -21.1 dBFS\n[Parsed_ebur128_0 @ 0x1] Summary:\n  Integrated loudness:\n    I:         -21.1 LUFS",
		"[silencedetect @ 0x1] silence_start: 2\nout_time_us=3000000\n[silencedetect @ 0x1] silence_end: 3.5 | silence_duration: 1.5",
		"[silencedetect @ 0x1] silence_end: 1e300 | silence_duration: -5",
		"[Parsed_metadata_2 @ 0x1] lavfi.black_start=3\n[blackdetect @ 0x3] black_start:3 black_end:5 black_duration:2\n[freezedetect @ 0x2] lavfi.freezedetect.freeze_start: 4\n[freezedetect @ 0x2] lavfi.freezedetect.freeze_end: 1",
		"out_time_us=N/A\n[blackdetect @ 0x3] black_start:9 black_end:2\n[Parsed_ebur128_0 @ 0x1] t: nan M: x S: y I: z LUFS LRA: w LU",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, log string) {
		ok := func(err error) {
			if errors.Is(err, engine.ErrTiming) {
				t.Fatalf("%v on log %q", err, log)
			}
		}
		nop := func(engine.Piece) error { return nil }
		ld := &loudnessState{emit: engine.NewEmitter(nop), step: 300, piece: -1}
		sl := &silenceState{emit: engine.NewEmitter(nop), minMs: 500, open: -1}
		bl := &blackState{emit: engine.NewEmitter(nop), detectBlack: true, freezeLag: 600, black: -1, frozen: -1}
		for _, line := range strings.Split(log, "\n") {
			ok(ld.line(line))
			ok(sl.line(line))
			ok(bl.line(line))
		}
		ok(ld.finish())
		ok(sl.finish())
		ok(bl.finish())
	})
}
