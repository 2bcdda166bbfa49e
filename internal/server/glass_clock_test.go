package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// The glass-to-glass benchmark's publisher burns its wall clock into the
// picture: each frame carries the time it was made (Unix milliseconds, the
// low 32 bits) as 32 big black or white blocks followed by 8 blocks of a
// CRC-8 of those 4 bytes, so a reader that misreads a block (a frame
// smeared by the encoder, a canvas caught between frames) rejects the
// code instead of reporting a wrong latency. The blocks are big enough for
// libx264 at -preset ultrafast -tune zerolatency to keep every one of them
// clearly black or white; TestGlassClockCodeSurvivesX264 checks that.
const (
	glassWidth  = 640
	glassHeight = 360
	glassFPS    = 30
	glassGOP    = 30 // one key frame a second

	glassCols   = 8  // blocks per row
	glassRows   = 5  // 40 blocks: 32 bits of time, 8 of CRC
	glassBlockW = 64 // block size in pixels
	glassBlockH = 56
	glassLeft   = (glassWidth - glassCols*glassBlockW) / 2  // 64
	glassTop    = (glassHeight - glassRows*glassBlockH) / 2 // 40

	glassBlack = 16  // video-range luma
	glassWhite = 235 //
)

// glassCRC8 is CRC-8 (polynomial x^8+x^2+x+1, 0x07) of the code's 4 bytes,
// most significant first, XORed with 0x5a so that an all-black picture (a
// player's black before the first frame) is not the code 0.
func glassCRC8(code uint32) uint8 {
	var crc uint8
	for shift := 24; shift >= 0; shift -= 8 {
		crc ^= uint8(code >> shift)
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x07
			} else {
				crc <<= 1
			}
		}
	}
	return crc ^ 0x5a
}

// glassBits is the 40 bits drawn for a code, block by block: the code
// from its most significant bit, then its CRC-8.
func glassBits(code uint32) [glassCols * glassRows]bool {
	var bits [glassCols * glassRows]bool
	word := uint64(code)<<8 | uint64(glassCRC8(code))
	for i := range bits {
		bits[i] = word>>(len(bits)-1-i)&1 == 1
	}
	return bits
}

// glassFrame draws code into a yuv420p frame (grey chroma).
func glassFrame(frame []byte, code uint32) {
	luma := frame[:glassWidth*glassHeight]
	for i := range luma {
		luma[i] = glassBlack
	}
	for i := range frame[glassWidth*glassHeight:] {
		frame[glassWidth*glassHeight+i] = 128
	}
	for i, on := range glassBits(code) {
		if !on {
			continue
		}
		x0, y0 := glassLeft+i%glassCols*glassBlockW, glassTop+i/glassCols*glassBlockH
		for y := y0; y < y0+glassBlockH; y++ {
			row := luma[y*glassWidth+x0 : y*glassWidth+x0+glassBlockW]
			for x := range row {
				row[x] = glassWhite
			}
		}
	}
}

// glassFrameSize is the size of one yuv420p frame.
const glassFrameSize = glassWidth * glassHeight * 3 / 2

// glassRead reads the code from a luma plane (glassWidth x glassHeight):
// each block's middle half is averaged and compared with mid-grey; ok is
// false when the CRC does not match or a block is neither clearly black
// nor clearly white.
func glassRead(luma []byte) (code uint32, ok bool) {
	var word uint64
	for i := range glassCols * glassRows {
		x0, y0 := glassLeft+i%glassCols*glassBlockW, glassTop+i/glassCols*glassBlockH
		sum, n := 0, 0
		for y := y0 + glassBlockH/4; y < y0+glassBlockH*3/4; y++ {
			for x := x0 + glassBlockW/4; x < x0+glassBlockW*3/4; x++ {
				sum += int(luma[y*glassWidth+x])
				n++
			}
		}
		avg := sum / n
		if avg > 80 && avg < 170 {
			return 0, false
		}
		word = word<<1 | uint64(b2i(avg >= 128))
	}
	code = uint32(word >> 8)
	return code, uint8(word) == glassCRC8(code)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// glassEncodeArgs are the publisher's libx264 settings: low latency, a key
// frame a second, no B-frames (zerolatency).
func glassEncodeArgs() []string {
	return []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-g", strconv.Itoa(glassGOP), "-keyint_min", strconv.Itoa(glassGOP), "-pix_fmt", "yuv420p", "-b:v", "800k"}
}

// glassRawInput is ffmpeg's input for frames written to its stdin.
func glassRawInput() []string {
	return []string{"-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", fmt.Sprintf("%dx%d", glassWidth, glassHeight),
		"-framerate", strconv.Itoa(glassFPS), "-i", "pipe:0"}
}

// glassScale is how much smaller than the video the page's canvas is:
// reading a quarter-size picture costs the browser a sixteenth of the
// pixels, and each block is still 16x14 pixels there.
const glassScale = 4

// glassDecoderJS is the page's reader of the code, glassRead's layout on a
// canvas the video is drawn into at 1/glassScale of its size: it returns
// the code, or -1 when the CRC does not match or a block is grey.
var glassDecoderJS = fmt.Sprintf(`function glassRead(px, width) {
	const cols = %d, rows = %d, bw = %d, bh = %d, left = %d, top = %d;
	let bits = [];
	for (let i = 0; i < cols * rows; i++) {
		const x0 = left + (i %% cols) * bw, y0 = top + Math.floor(i / cols) * bh;
		let sum = 0, n = 0;
		for (let y = y0 + Math.floor(bh / 4); y < y0 + Math.ceil(bh * 3 / 4); y++) {
			for (let x = x0 + Math.floor(bw / 4); x < x0 + Math.ceil(bw * 3 / 4); x++) {
				const o = (y * width + x) * 4;
				sum += (px[o] + px[o + 1] + px[o + 2]) / 3;
				n++;
			}
		}
		const avg = sum / n;
		if (avg > 80 && avg < 170) return -1;
		bits.push(avg >= 128 ? 1 : 0);
	}
	let code = 0, check = 0;
	for (let i = 0; i < 32; i++) code = code * 2 + bits[i];
	for (let i = 32; i < 40; i++) check = check * 2 + bits[i];
	let crc = 0;
	for (let shift = 24; shift >= 0; shift -= 8) {
		crc ^= Math.floor(code / 2 ** shift) & 0xff;
		for (let k = 0; k < 8; k++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
	}
	return (crc ^ 0x5a) === check ? code : -1;
}`, glassCols, glassRows, glassBlockW/glassScale, glassBlockH/glassScale, glassLeft/glassScale, glassTop/glassScale)

// TestGlassClockCodeSurvivesX264 encodes frames carrying known codes (the
// extremes, every single bit, random ones) with the publisher's libx264
// settings, decodes them with ffmpeg and reads every code back; a frame
// with a block flipped or greyed out is rejected.
func TestGlassClockCodeSurvivesX264(t *testing.T) {
	testenv.RequireTool(t, "ffmpeg")
	codes := []uint32{0, 0xffffffff, 0xaaaaaaaa, 0x55555555}
	for bit := range 32 {
		codes = append(codes, 1<<bit)
	}
	rng := rand.New(rand.NewPCG(15, 7))
	for len(codes) < 3*glassFPS*2 {
		codes = append(codes, rng.Uint32())
	}
	var raw bytes.Buffer
	frame := make([]byte, glassFrameSize)
	for _, c := range codes {
		glassFrame(frame, c)
		raw.Write(frame)
	}
	mp4 := filepath.Join(t.TempDir(), "clock.mp4")
	enc := exec.Command("ffmpeg", append(append(append([]string{"-hide_banner", "-loglevel", "error"}, glassRawInput()...),
		glassEncodeArgs()...), "-y", mp4)...)
	enc.Stdin = &raw
	if out, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg encode: %v\n%s", err, out)
	}
	dec := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", mp4, "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1")
	var stderr bytes.Buffer
	dec.Stderr = &stderr
	decoded, err := dec.Output()
	if err != nil {
		t.Fatalf("ffmpeg decode: %v\n%s", err, stderr.String())
	}
	plane := glassWidth * glassHeight
	if len(decoded) != len(codes)*plane {
		t.Fatalf("decoded %d bytes, want %d frames of %d", len(decoded), len(codes), plane)
	}
	for i, want := range codes {
		got, ok := glassRead(decoded[i*plane : (i+1)*plane])
		if !ok || got != want {
			t.Errorf("frame %d: read %#08x (crc ok %v), drew %#08x", i, got, ok, want)
		}
	}

	// A misread block must not pass as another time.
	luma := make([]byte, plane)
	copy(luma, decoded[:plane])
	flipBlock(luma, 5, glassWhite)
	if c, ok := glassRead(luma); ok {
		t.Errorf("a frame with block 5 flipped white reads as %#08x", c)
	}
	copy(luma, decoded[plane:2*plane])
	flipBlock(luma, 20, 128)
	if c, ok := glassRead(luma); ok {
		t.Errorf("a frame with block 20 grey reads as %#08x", c)
	}
	if _, ok := glassRead(make([]byte, plane)); ok {
		t.Error("an all-black frame reads as a code")
	}
}

// flipBlock paints block i of a luma plane with v.
func flipBlock(luma []byte, i int, v byte) {
	x0, y0 := glassLeft+i%glassCols*glassBlockW, glassTop+i/glassCols*glassBlockH
	for y := y0; y < y0+glassBlockH; y++ {
		for x := x0; x < x0+glassBlockW; x++ {
			luma[y*glassWidth+x] = v
		}
	}
}
