// Package chunker cuts a media stream into the pieces engines read: video
// chunks, audio chunks and still frames.
//
// Run pipes its input into one ffmpeg process that writes every requested
// kind at once, so the input is demuxed a single time however many kinds a
// job needs. RunFile does the same with a local file that ffmpeg opens
// itself, and differs from Run in nothing else.
//
// Use RunFile whenever the media is already a file (an upload, a
// download): ffmpeg can then seek in it, which an MP4 whose index (moov)
// follows its media needs, as ffmpeg writes it unless told otherwise
// (-movflags +faststart). Use Run for live streams and inputs
// that never touch the disk; it refuses an MP4 with its index at the end
// with ErrIndexAtEnd, and never emits a video or audio chunk that is empty
// or lasts no time: an input from which ffmpeg cut nothing else is an
// error.
//
// The kinds:
//
//   - KindVideo ("video/mp2t"): the source's video (and first audio track)
//     copied without re-encoding into MPEG-TS, cut on the first key frame at
//     or after each multiple of Options.Duration. Every chunk starts with a
//     key frame and its own PAT/PMT, so it plays on its own. An input with
//     audio only gets audio-only MPEG-TS chunks cut at the same times.
//   - KindAudio ("audio/wav"): the first audio track resampled to 16 kHz mono
//     signed 16-bit WAV, cut at packet boundaries near each multiple of
//     Duration; with AudioFormat "source" the source codec is copied into a
//     container that carries it (ADTS for AAC, MP3, Ogg for Opus and Vorbis,
//     FLAC, else Matroska audio).
//   - KindFrame ("image/jpeg"): JPEG stills of source frames, the first frame
//     of every 1/FrameRate interval of the timeline and/or every frame whose
//     scene-change score exceeds SceneThreshold, scaled down to MaxFrameWidth.
//
// # Timing
//
// Chunk times are exact media times, never estimates from the nominal
// duration: ffmpeg reports every finished segment on a pipe of its own
// (the segment muxer's CSV list) and frame times come from the filter graph's
// own timestamps. Times are measured from the input's first timestamp (the
// smallest start time over its streams, as ffprobe reports it), so video,
// audio and frame chunks of one input share one timeline whichever kinds are
// asked for. The first video or audio chunk starts at 0; later chunks start
// where the previous one ended. A frame's StartMs is the frame's own
// presentation time and EndMs the end of its display.
//
// Chunks are emitted as soon as ffmpeg closes them, so a live input that
// trickles in yields chunks while it is still running. Each kind's chunks
// are emitted in index order; kinds interleave. emit is never called
// concurrently. A frame is closed when the next selected frame (or the end
// of input) arrives, so a frame chunk lags by one selected frame.
//
// # Determinism
//
// Cut points depend only on the media: the same input with the same Options
// yields the same chunks, with the same indexes and times, on every run.
// UUID turns (job, kind, index) into a stable name-based UUID, so chunking a
// job again after a crash names every chunk as the first run did and
// downstream consumers can drop duplicates.
//
// # Hostile input
//
// ffprobe and ffmpeg read the input only through the pipe protocol (Run)
// or the file protocol on the one file given, named "file:" and its
// absolute path (RunFile), and only with the demuxers in media.Demuxers;
// input that is not media is refused with ffprobe's reason, and a
// cancelled context kills ffmpeg.
package chunker
