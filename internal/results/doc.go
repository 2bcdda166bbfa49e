// Package results turns the engines' stored results into what people read:
// time-coded texts (what was said, what was shown on screen) and the
// caption formats built from them, WebVTT and SRT.
//
// The engines write vtn-standard documents (protocol.Document). This
// package reads them in one place, so search, exports and the subtitles
// rendition of a title agree on what a transcript is.
package results
