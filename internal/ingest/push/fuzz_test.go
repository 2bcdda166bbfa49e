package push

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// FuzzParseSRTStreamID checks that any stream id either parses into a
// known mode and a clean key or is refused, without panicking.
func FuzzParseSRTStreamID(f *testing.F) {
	for _, s := range []string{"publish:abc", "read:abc", "#!::r=abc,m=publish", "#!::m=request", "", ":", "#!::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		mode, key, err := ParseSRTStreamID(id)
		if err != nil {
			if mode != "" || key != "" {
				t.Fatalf("error %v with mode %q key %q", err, mode, key)
			}
			return
		}
		if mode != srtModePublish && mode != srtModeRead {
			t.Fatalf("mode %q", mode)
		}
		if key == "" || strings.ContainsAny(key, " /,:") {
			t.Fatalf("key %q", key)
		}
		if !strings.Contains(id, key) {
			t.Fatalf("key %q is not in the stream id %q", key, id)
		}
	})
}

// FuzzRTMPPublishKey checks that any URL path either yields a key from the
// live application or is refused, without panicking.
func FuzzRTMPPublishKey(f *testing.F) {
	for _, s := range []string{"/live/abc", "/live/abc?x=1", "/live/", "/other/abc", "//", "/live/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, err := RTMPPublishKey(&url.URL{Scheme: "rtmp", Host: "h", Path: path})
		if err != nil {
			if key != "" {
				t.Fatalf("error %v with key %q", err, key)
			}
			return
		}
		if key == "" || strings.ContainsAny(key, "/ ?") {
			t.Fatalf("key %q from path %q", key, path)
		}
		if !strings.HasPrefix(strings.TrimLeft(path, "/"), RTMPApp+"/") {
			t.Fatalf("key %q from path %q outside the %s application", key, path, RTMPApp)
		}
	})
}

// FuzzHTTPPublishKey checks that any path either yields a key under
// HTTPPublishPrefix or is refused, without panicking.
func FuzzHTTPPublishKey(f *testing.F) {
	for _, s := range []string{"/publish/abc", "/publish/abc.ts", "/publish/abc.webm", "/publish/", "/publish/a/b", "/publish/.ts", "/other/abc", "/publish/a.b.ts"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, err := HTTPPublishKey(path)
		if err != nil {
			if key != "" {
				t.Fatalf("error %v with key %q", err, key)
			}
			return
		}
		if key == "" || len(key) > maxKeyLength || strings.ContainsAny(key, "/ ?#%.") {
			t.Fatalf("key %q from path %q", key, path)
		}
		if !strings.HasPrefix(path, HTTPPublishPrefix+key) {
			t.Fatalf("key %q is not what follows %s in %q", key, HTTPPublishPrefix, path)
		}
	})
}

// FuzzPushFormat feeds any bytes, split in two writes, to the format sniff
// and the MPEG-TS check: nothing may panic, the sniff must be consistent
// (a decided format stays decided with more bytes), a stream of whole
// transport packets always passes the check, and the description of any
// head is one line.
func FuzzPushFormat(f *testing.F) {
	pkt := make([]byte, mpegts.PacketSize)
	pkt[0] = mpegts.SyncByte
	f.Add(bytes.Repeat(pkt, 4), uint16(100))
	f.Add(append([]byte{0x1a, 0x45, 0xdf, 0xa3}, "matroska"...), uint16(2))
	f.Add([]byte("<!doctype html>"), uint16(3))
	f.Add(append(bytes.Repeat(pkt, 2), bytes.Repeat([]byte{0}, 70000)...), uint16(400))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		format, more := sniffFormat(data, false)
		if more && format != formatUnknown {
			t.Fatalf("format %v decided yet more bytes asked for", format)
		}
		if !more && format != formatUnknown {
			if f2, _ := sniffFormat(append(bytes.Clone(data), 0x47, 0, 1), true); f2 != format {
				t.Fatalf("format %v became %v with more bytes", format, f2)
			}
		}
		if d := describeHead(data); strings.ContainsAny(d, "\r\n") {
			t.Fatalf("description %q spans lines", d)
		}
		k := min(int(split), len(data))
		var c tsCheck
		err := c.check(data[:k])
		if err == nil {
			err = c.check(data[k:])
		}
		if err != nil && len(data) <= maxGarbage {
			t.Fatalf("%d bytes failed the check: %v", len(data), err)
		}
		// Whole packets always pass, however they are split.
		clean := bytes.Repeat(pkt, 1+len(data)%500)
		var c2 tsCheck
		k = min(int(split), len(clean))
		if err := c2.check(clean[:k]); err != nil {
			t.Fatal(err)
		}
		if err := c2.check(clean[k:]); err != nil || c2.bad > mpegts.PacketSize {
			t.Fatalf("clean packets: %v, %d bad bytes", err, c2.bad)
		}
	})
}
