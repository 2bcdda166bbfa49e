package engines

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // frames are JPEG (the chunker's and a route's)
	_ "image/png"  // or PNG
	"io"
	"slices"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// ocr-frame is the ocr engine's frame mode: the same Tesseract reading of
// one picture, on a still frame handed to it as a chunk instead of frames
// it samples from a stream. It suits frames a job picks: the frame at each
// scene change a task DAG routes from the scenes engine, or the chunker's
// frames (chunking.frame_rate, chunking.scene_threshold). Each line read
// is one series covering the chunk; there is no merging across frames.

// ocrFrameSpec is the ocr-frame engine's spec.
var ocrFrameSpec = engine.Spec{
	Name:    "ocr-frame",
	Title:   "Text in still frames (Tesseract OCR, the ocr engine's frame mode)",
	Mode:    engine.ModeChunk,
	Summary: "Reads the text of one still frame per chunk, line by line, with word boxes and confidences: the ocr engine's reading, on frames a job picks",
	Description: "The ocr engine's frame mode: decodes the chunk's picture (JPEG or PNG) and reads it " +
		"with Tesseract 5 exactly as ocr reads a sampled frame. Each text line becomes a series " +
		"covering the chunk's times (an instant for a frame routed from a scene change) with an object " +
		"of type text (the line, its box, its mean confidence) and its words, each with a confidence " +
		"and a boundingPoly in fractions of the frame. Frames are read independently: nothing is " +
		"merged across chunks. Route the scenes engine's output to it in a task DAG to read the frame " +
		"at each scene change, or run it on the chunker's frames.",
	Inputs:  []string{"image/*"},
	Outputs: []string{"object", "text"},
	Options: []engine.Option{
		{Name: "languages", Type: engine.TypeString, Default: "eng",
			Doc: "Tesseract languages joined by '+' (\"eng+deu\"); each needs its Debian package tesseract-ocr-<lang>"},
		{Name: "psm", Type: engine.TypeInt, Default: 3, Min: 3, Max: 13,
			Doc: "Tesseract's page segmentation mode: 3 finds blocks of text anywhere, 11 and 12 sparse text, 6 one uniform block, 7 a single line"},
		{Name: "min_confidence", Type: engine.TypeFloat, Default: 0.6, Min: 0.0, Max: 1.0,
			Doc: "Words Tesseract reads with a lower confidence (0 to 1) are dropped"},
	},
	Examples: []engine.Example{
		{Title: "Sparse text such as captions and signs", Options: map[string]any{"psm": 11}},
	},
	Requires: ocrSpec.Requires[1:], // tesseract and its English model; the picture is decoded in-process
}

// Limits of the picture of one chunk: its bytes, and its pixels (8K UHD
// fits), checked from its header before it is decoded.
const (
	maxFrameBytes  = 64 << 20
	maxFramePixels = 1 << 25
)

func init() {
	engine.Register(ocrFrameSpec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return ocrFrameEngine{}, nil }))
}

// ocrFrameEngine is the ocr-frame engine. It keeps no state.
type ocrFrameEngine struct{}

// Process implements engine.ChunkEngine.
func (ocrFrameEngine) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	set := ocrSettings{languages: opts.String("languages"), psm: opts.Int("psm"), minConfidence: opts.Float("min_confidence")}
	if err := checkOCRLanguages(ctx, set.languages); err != nil {
		return nil, err
	}
	frame, err := readFrameChunk(c)
	if err != nil {
		return nil, err
	}
	lines, err := tesseractLines(ctx, frame, set)
	if err != nil {
		return nil, fmt.Errorf("ocr-frame: %w", err)
	}
	return frameDocument(lines, max(c.DurationMs(), 0)), nil
}

// readFrameChunk decodes the chunk's picture into the grey PGM image
// tesseractLines reads.
func readFrameChunk(c *engine.Chunk) (ocrFrame, error) {
	r, err := c.Open()
	if err != nil {
		return ocrFrame{}, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxFrameBytes+1))
	if err != nil {
		return ocrFrame{}, err
	}
	if len(data) > maxFrameBytes {
		return ocrFrame{}, fmt.Errorf("ocr-frame: the picture is larger than %d bytes", maxFrameBytes)
	}
	return decodeFrame(data)
}

// decodeFrame decodes a JPEG or PNG picture into a grey PGM image, after
// checking its size from its header.
func decodeFrame(data []byte) (ocrFrame, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return ocrFrame{}, fmt.Errorf("ocr-frame: the chunk is not a JPEG or PNG picture: %w: %w", err, engine.ErrIgnored)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxFramePixels {
		return ocrFrame{}, fmt.Errorf("ocr-frame: a %dx%d %s picture is too large to read", cfg.Width, cfg.Height, format)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return ocrFrame{}, fmt.Errorf("ocr-frame: decoding the %s picture: %w", format, err)
	}
	return pgmFrame(img), nil
}

// pgmFrame draws img in grey and writes it as a binary PGM image.
func pgmFrame(img image.Image) ocrFrame {
	b := img.Bounds()
	gray := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(gray, gray.Bounds(), img, b.Min, draw.Src)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "P5\n%d %d\n255\n", b.Dx(), b.Dy())
	for y := range b.Dy() {
		buf.Write(gray.Pix[y*gray.Stride : y*gray.Stride+b.Dx()])
	}
	return ocrFrame{width: b.Dx(), height: b.Dy(), pgm: buf.Bytes()}
}

// frameDocument is one series per line read, covering [0, durMs], top to
// bottom; nil when nothing was read.
func frameDocument(lines []ocrLine, durMs int64) *protocol.Document {
	if len(lines) == 0 {
		return nil
	}
	series := make([]protocol.Series, 0, len(lines))
	for _, l := range lines {
		series = append(series, (&ocrTrack{best: l}).series(0, durMs))
	}
	slices.SortStableFunc(series, func(a, b protocol.Series) int {
		return cmp.Compare(a.Object.BoundingPoly[0].Y, b.Object.BoundingPoly[0].Y)
	})
	return &protocol.Document{Series: series}
}
