package bus

import (
	"encoding/binary"
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestFrame is a request frame header with a body of n bytes after it.
func requestFrame(key, version int16, corr int32, n int) []byte {
	f := make([]byte, requestHeaderLen+n)
	binary.BigEndian.PutUint32(f, uint32(8+n))
	binary.BigEndian.PutUint16(f[4:], uint16(key))
	binary.BigEndian.PutUint16(f[6:], uint16(version))
	binary.BigEndian.PutUint32(f[8:], uint32(corr))
	return f
}

func TestCompatConnPatchesOnlyTheSaslHandshakeAndProduceEntriesOfApiVersions(t *testing.T) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	for _, k := range [][3]int16{{0, 3, 13}, {1, 4, 18}, {17, 1, 1}, {23, 3, 4}, {36, 0, 2}} {
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k[0], MinVersion: k[1], MaxVersion: k[2]})
	}
	frame := resp.AppendTo(make([]byte, 8))
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	binary.BigEndian.PutUint32(frame[4:], 7)

	out := patchAPIVersions(frame, 3)
	got := kmsg.NewPtrApiVersionsResponse()
	got.Version = 3
	if out == nil || got.ReadFrom(out[8:]) != nil {
		t.Fatalf("patched frame does not decode")
	}
	if int(binary.BigEndian.Uint32(out)) != len(out)-4 || binary.BigEndian.Uint32(out[4:]) != 7 {
		t.Errorf("patched frame's size or correlation id is wrong")
	}
	for i, k := range got.ApiKeys {
		want := resp.ApiKeys[i]
		if k.ApiKey == saslHandshakeKey || k.ApiKey == produceKey {
			want.MinVersion = 0
		}
		if k.ApiKey != want.ApiKey || k.MinVersion != want.MinVersion || k.MaxVersion != want.MaxVersion {
			t.Errorf("key %d: %d-%d, want %d-%d", k.ApiKey, k.MinVersion, k.MaxVersion, want.MinVersion, want.MaxVersion)
		}
	}
	if patchAPIVersions(out, 3) != nil {
		t.Error("a frame already starting SaslHandshake and Produce at 0 was patched again")
	}
}

func TestLoginFailedFrameDecodesAsSASLAuthenticationFailed(t *testing.T) {
	for _, v := range []int16{0, 1, 2} {
		frame := loginFailedFrame(pendingRequest{corr: 42, version: v})
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		resp.Version = v
		body := frame[8:]
		if resp.IsFlexible() {
			body = body[1:]
		}
		if err := resp.ReadFrom(body); err != nil || kerr.ErrorForCode(resp.ErrorCode) != kerr.SaslAuthenticationFailed {
			t.Errorf("v%d: %v, code %d", v, err, resp.ErrorCode)
		}
		if int(binary.BigEndian.Uint32(frame)) != len(frame)-4 || binary.BigEndian.Uint32(frame[4:]) != 42 {
			t.Errorf("v%d: frame size or correlation id is wrong", v)
		}
	}
}

// FuzzCompatConnTrack: whatever bytes a client sends, in whatever pieces,
// following them never panics and finds the same requests.
func FuzzCompatConnTrack(f *testing.F) {
	seed := append(requestFrame(apiVersionsKey, 3, 1, 5), requestFrame(saslAuthenticateKey, 2, 2, 30)...)
	f.Add(seed, uint8(1))
	f.Add(append(seed, requestFrame(0, 9, 3, 0)...), uint8(5))
	f.Add([]byte{0, 0, 0, 1, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		whole := newCompatConn(nil)
		whole.track(data)
		split := newCompatConn(nil)
		n := int(piece%16) + 1
		for i := 0; i < len(data); i += n {
			split.track(data[i:min(i+n, len(data))])
		}
		if !maps.Equal(whole.apiVersions, split.apiVersions) || (whole.login == nil) != (split.login == nil) ||
			(whole.login != nil && *whole.login != *split.login) {
			t.Fatalf("tracking %x whole and in pieces of %d differ", data, n)
		}
	})
}
