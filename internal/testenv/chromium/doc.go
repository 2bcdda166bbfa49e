// Package chromium drives a headless Chromium over the Chrome DevTools
// Protocol for tests: just the handful of commands browser tests need
// (open a tab, navigate, evaluate JavaScript, take a screenshot, set a
// file input, answer dialogs), plus the page's console output and
// exceptions for failure messages. The console's browser tests and the
// end-to-end test use it; it is not part of weir.
package chromium
