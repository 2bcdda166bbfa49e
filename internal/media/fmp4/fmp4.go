// Package fmp4 writes fragmented MP4 (ISO BMFF) for HLS: an initialization
// segment (ftyp + moov) and media fragments (moof + mdat) of H.264 video and
// AAC audio built from the access units internal/media/mpegts reassembles.
// The low-latency live packager cuts its parts with it; the boxes come from
// github.com/Eyevinn/mp4ff.
//
// Input comes from publishers and is untrusted: a malformed parameter set
// or ADTS header is an error, never a panic.
package fmp4

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// VideoTimescale is the timescale of video tracks (the MPEG-TS clock).
const VideoTimescale = 90000

// AudioFrameSamples is the number of PCM samples in one AAC frame.
const AudioFrameSamples = 1024

// H264Config describes an H.264 track: its first sequence and picture
// parameter sets (NAL units without start codes).
type H264Config struct {
	SPS, PPS []byte
}

// AACConfig describes an AAC track, as an ADTS header declares it.
type AACConfig struct {
	ObjectType byte // 2 for AAC-LC
	SampleRate int
	Channels   int
}

// Sample is one access unit. Video data is AVCC (NAL units each preceded
// by a 4-byte length, see AnnexBToAVCC); audio data is one raw AAC frame.
type Sample struct {
	DTS, PTS time.Duration
	Key      bool
	Data     []byte
}

// Writer writes the init segment and fragments of one presentation with up
// to one video and one audio track. Track 1 is video when there is one.
type Writer struct {
	video   *H264Config
	audio   *AACConfig
	videoID uint32
	audioID uint32
	seq     uint32
}

// NewWriter returns a writer for the given tracks; at least one is needed.
func NewWriter(video *H264Config, audio *AACConfig) (*Writer, error) {
	if video == nil && audio == nil {
		return nil, errors.New("fmp4: no track")
	}
	if audio != nil && (audio.SampleRate <= 0 || audio.SampleRate > 192000 || audio.Channels < 1 || audio.Channels > 7) {
		return nil, fmt.Errorf("fmp4: unsupported AAC configuration %+v", *audio)
	}
	w := &Writer{video: video, audio: audio}
	id := uint32(1)
	if video != nil {
		w.videoID, id = id, id+1
	}
	if audio != nil {
		w.audioID = id
	}
	return w, nil
}

// Init returns the initialization segment.
func (w *Writer) Init() (data []byte, err error) {
	defer recoverErr(&err)
	init := mp4.CreateEmptyInit()
	if w.video != nil {
		trak := init.AddEmptyTrack(VideoTimescale, "video", "und")
		if err := trak.SetAVCDescriptor("avc1", [][]byte{w.video.SPS}, [][]byte{w.video.PPS}, true); err != nil {
			return nil, fmt.Errorf("fmp4: H.264 parameter sets: %w", err)
		}
	}
	if w.audio != nil {
		trak := init.AddEmptyTrack(uint32(w.audio.SampleRate), "audio", "und")
		asc := &aac.AudioSpecificConfig{ObjectType: w.audio.ObjectType, ChannelConfiguration: byte(w.audio.Channels), SamplingFrequency: w.audio.SampleRate}
		var b bytes.Buffer
		if err := asc.Encode(&b); err != nil {
			return nil, fmt.Errorf("fmp4: AAC configuration: %w", err)
		}
		trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", uint16(w.audio.Channels), 16, uint16(w.audio.SampleRate), mp4.CreateEsdsBox(b.Bytes())))
	}
	var out bytes.Buffer
	if err := init.Encode(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Fragment returns one moof + mdat holding the video and audio samples
// given (either may be empty, not both), in decode order. The last sample
// of each track lasts until videoEnd or audioEnd, the decode time of the
// track's next sample; the others until the sample after them. Fragments
// are numbered from 1 in the order written.
func (w *Writer) Fragment(video []Sample, videoEnd time.Duration, audio []Sample, audioEnd time.Duration) (data []byte, err error) {
	defer recoverErr(&err)
	if len(video) > 0 && w.video == nil || len(audio) > 0 && w.audio == nil {
		return nil, errors.New("fmp4: samples for a track the writer does not have")
	}
	var ids []uint32
	if len(video) > 0 {
		ids = append(ids, w.videoID)
	}
	if len(audio) > 0 {
		ids = append(ids, w.audioID)
	}
	if len(ids) == 0 {
		return nil, errors.New("fmp4: empty fragment")
	}
	w.seq++
	frag, err := mp4.CreateMultiTrackFragment(w.seq, ids)
	if err != nil {
		return nil, err
	}
	if err := addSamples(frag, w.videoID, VideoTimescale, video, videoEnd); err != nil {
		return nil, fmt.Errorf("fmp4: video: %w", err)
	}
	if len(audio) > 0 {
		if err := addSamples(frag, w.audioID, uint32(w.audio.SampleRate), audio, audioEnd); err != nil {
			return nil, fmt.Errorf("fmp4: audio: %w", err)
		}
	}
	var out bytes.Buffer
	if err := frag.Encode(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func addSamples(frag *mp4.Fragment, id, timescale uint32, ss []Sample, end time.Duration) error {
	for i, s := range ss {
		next := end
		if i+1 < len(ss) {
			next = ss[i+1].DTS
		}
		if s.DTS < 0 || next < s.DTS {
			return fmt.Errorf("sample %d: decode times %v then %v go back or below zero", i, s.DTS, next)
		}
		if len(s.Data) == 0 || len(s.Data) > 1<<28 {
			return fmt.Errorf("sample %d: %d bytes", i, len(s.Data))
		}
		dts := ticks(s.DTS, timescale)
		flags := mp4.NonSyncSampleFlags
		if s.Key {
			flags = mp4.SyncSampleFlags
		}
		cto := ticks(s.PTS, timescale) - dts
		smp := mp4.FullSample{
			Sample:     mp4.NewSample(flags, uint32(ticks(next, timescale)-dts), uint32(len(s.Data)), int32(cto)),
			DecodeTime: uint64(dts),
			Data:       s.Data,
		}
		if err := frag.AddFullSampleToTrack(smp, id); err != nil {
			return err
		}
	}
	return nil
}

// ticks converts d to a timescale, rounding to the nearest tick, so that
// consecutive samples' durations sum to the exact span between them.
func ticks(d time.Duration, timescale uint32) int64 {
	return (int64(d)*int64(timescale) + int64(time.Second)/2) / int64(time.Second)
}

// AnnexBToAVCC converts an H.264 access unit from Annex B (start codes) to
// AVCC (4-byte lengths), leaving out access unit delimiters, and returns
// the SPS and PPS it carries (nil when none) and whether it holds an IDR
// slice.
func AnnexBToAVCC(au []byte) (avcc, sps, pps []byte, idr bool) {
	nalus := avc.ExtractNalusFromByteStream(au)
	size := 0
	for _, n := range nalus {
		size += 4 + len(n)
	}
	avcc = make([]byte, 0, size)
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch avc.GetNaluType(n[0]) {
		case avc.NALU_AUD:
			continue
		case avc.NALU_SPS:
			if sps == nil {
				sps = n
			}
		case avc.NALU_PPS:
			if pps == nil {
				pps = n
			}
		case avc.NALU_IDR:
			idr = true
		}
		l := len(n)
		avcc = append(avcc, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
		avcc = append(avcc, n...)
	}
	return avcc, sps, pps, idr
}

// ADTSFrames splits a PES payload of ADTS frames into raw AAC frames and
// returns the configuration of the first header. A truncated frame or a
// header that is not ADTS is an error.
func ADTSFrames(pes []byte) (frames [][]byte, cfg AACConfig, err error) {
	defer recoverErr(&err)
	for off := 0; off < len(pes); {
		h, hoff, err := aac.DecodeADTSHeader(bytes.NewReader(pes[off:]))
		if err != nil {
			return nil, cfg, fmt.Errorf("fmp4: ADTS header at %d: %w", off, err)
		}
		start := off + hoff + int(h.HeaderLength)
		end := start + int(h.PayloadLength)
		if h.PayloadLength == 0 || end > len(pes) {
			return nil, cfg, fmt.Errorf("fmp4: ADTS frame at %d runs past the %d bytes of its PES", off, len(pes))
		}
		if len(frames) == 0 {
			cfg = AACConfig{ObjectType: h.ObjectType, SampleRate: int(h.Frequency()), Channels: int(h.ChannelConfig)}
		}
		frames = append(frames, pes[start:end])
		off = end
	}
	if len(frames) == 0 {
		return nil, cfg, errors.New("fmp4: no ADTS frame")
	}
	return frames, cfg, nil
}

func recoverErr(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("fmp4: malformed input: %v", r)
	}
}
