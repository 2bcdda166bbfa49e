package protocol

import (
	"errors"
	"testing"
)

const (
	okBound  = `{"type":"timestamp_bound","taskId":"t1","engineId":"ocr","timestampBoundMs":5000}`
	okWindow = `{"type":"result_window","jobId":"j1","windowStartMs":0,"windowEndMs":5000,"seq":0,"status":"complete","results":[]}`
)

// TestDecodeRejectsBadBoundsAndWindows pins the errors of weir's
// aggregation messages, each naming the member at fault.
func TestDecodeRejectsBadBoundsAndWindows(t *testing.T) {
	res := `{"engineId":"ocr","startOffsetMs":10,"endOffsetMs":20}`
	for _, c := range []struct{ name, value, want string }{
		{"bound without task", with(okBound, `{"taskId":null}`), `timestamp_bound: field "taskId": is required`},
		{"negative bound", with(okBound, `{"timestampBoundMs":-1}`), `timestamp_bound: field "timestampBoundMs": must not be negative, got -1`},
		{"fractional bound", with(okBound, `{"timestampBoundMs":1.5}`), `timestamp_bound: field "timestampBoundMs": must be an integer in range for int64, got number 1.5`},
		{"window without job", with(okWindow, `{"jobId":null}`), `result_window: field "jobId": is required`},
		{"empty window", with(okWindow, `{"windowEndMs":0}`), `result_window: field "windowEndMs": must be after windowStartMs (0), got 0`},
		{"negative seq", with(okWindow, `{"seq":-2}`), `result_window: field "seq": must not be negative, got -2`},
		{"unknown status", with(okWindow, `{"status":"done"}`), `result_window: field "status": must be complete or partial, got "done"`},
		{"partial without missing", with(okWindow, `{"status":"partial"}`), `result_window: field "missing": must name the engines timed out when status is partial`},
		{"complete with missing", with(okWindow, `{"missing":["ocr"]}`), `result_window: field "missing": must be empty when status is complete, got 1 engines`},
		{"empty missing name", with(okWindow, `{"status":"partial","missing":[""]}`), `result_window: field "missing[0]": is empty`},
		{"result without engine", with(okWindow, `{"results":[`+with(res, `{"engineId":null}`)+`]}`), `result_window: field "results[0].engineId": is required`},
		{"result backwards", with(okWindow, `{"results":[`+res+`,`+with(res, `{"endOffsetMs":5}`)+`]}`), `result_window: field "results[1].endOffsetMs": must not be before startOffsetMs (10), got 5`},
		{"result content number", with(okWindow, `{"results":[`+with(res, `{"content":7}`)+`]}`), `result_window: field "results[0].content": must be a JSON object or string, got a number`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte("k"), []byte(c.value))
			if err == nil || err.Error() != c.want {
				t.Fatalf("Decode error\n got: %v\nwant: %s", err, c.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FieldError", err)
			}
		})
	}
}

// TestBoundsAndWindowsKeys: a bound goes under its task's key, so it lands
// on the partition of the task's outputs; a window under its job's.
func TestBoundsAndWindowsKeys(t *testing.T) {
	key, _, err := Encode(&TimestampBound{Header: Header{TaskID: "job-1-ocr"}, TimestampBoundMs: 7})
	if err != nil || string(key) != "job-1-ocr" {
		t.Fatalf("bound key %q, %v", key, err)
	}
	key, _, err = Encode(&ResultWindow{Header: Header{JobID: "job-1"}, WindowEndMs: 1, Status: WindowComplete})
	if err != nil || string(key) != "job-1" {
		t.Fatalf("window key %q, %v", key, err)
	}
	if got := WindowsTopic("job-1"); got != "windows_job-1" {
		t.Fatalf("WindowsTopic = %q", got)
	}
}

// TestWindowReadsBackEqual: whitespace in contents and an empty missing
// list do not survive decoding, so a window decoded, encoded and decoded
// again is the same.
func TestWindowReadsBackEqual(t *testing.T) {
	value := with(okWindow, `{"missing":[],"results":[{"engineId":"a","startOffsetMs":0,"endOffsetMs":1,"content":{ "series" : [] }}]}`)
	m, err := Decode([]byte("j1"), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	w := m.(*ResultWindow)
	if w.Missing != nil || string(w.Results[0].Content) != `{"series":[]}` {
		t.Fatalf("decoded %#v", w)
	}
}
