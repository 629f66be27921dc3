package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/instructgo/instructgo/model/tokenizer"
)

// MaxLineBytes is the longest JSONL line the readers accept. A longer line
// is a bad line (skipped, with ReadOptions.SkipBadLines).
const MaxLineBytes = 64 << 20

// maxLineBytes is MaxLineBytes, lowered by tests (to no less than the
// 64 KiB read buffer, below which lines are never measured).
var maxLineBytes = MaxLineBytes

// maxKeptErrors is how many skipped-line messages ReadStats keeps.
const maxKeptErrors = 5

// ReadOptions controls how the readers treat bad lines and render
// conversations.
type ReadOptions struct {
	// SkipBadLines counts a bad line in ReadStats and goes on, instead of
	// failing on it.
	SkipBadLines bool
	// Chat renders messages with a model's chat template instead of the
	// package's plain one (see chat.go); encode the texts with
	// tokenizer.WithChat. ChatFor sets it from the tokenizer.
	Chat *tokenizer.ChatTemplate
	// noChat, when set, refuses messages: the tokenizer cannot render
	// them (ChatFor).
	noChat error
}

// ChatFor returns opt rendering conversations the way tok encodes them
// (tokenizer.ForChat decided): with its chat template, as the package's
// plain lines, or not at all, when a line with messages fails with
// tokenizer.ChatOf's reason.
func (opt ReadOptions) ChatFor(tok tokenizer.Tokenizer) ReadOptions {
	opt.Chat, opt.noChat = tokenizer.ChatOf(tok)
	return opt
}

// render is how opt renders conversations.
func (opt ReadOptions) render() render { return render{opt.Chat, opt.noChat} }

// ReadStats describes what a reader saw.
type ReadStats struct {
	Lines    int // non-blank lines read
	Examples int // examples returned
	Skipped  int // bad lines skipped (SkipBadLines only)
	// Errors holds the messages of the first few skipped lines, for a
	// warning.
	Errors []string
}

// LineError is the error for one bad line: the file, the 1-based line
// number, the field (empty when the line as a whole is bad) and what is
// wrong with it. Its message reads `sft.jsonl:17: field "completion":
// missing`.
type LineError struct {
	Path  string
	Line  int
	Field string
	Err   error
}

func (e *LineError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: field %q: %v", e.Path, e.Line, e.Field, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// fieldError is what a line parser returns; the reader adds file and line.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("field %q: %v", e.field, e.err)
}

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

func lineErr(format string, args ...any) error {
	return &fieldError{err: fmt.Errorf(format, args...)}
}

var (
	errMissing   = errors.New("missing")
	errEmpty     = errors.New("empty")
	errNoExample = errors.New("no examples")
	errLongLine  = errors.New("line too long")
	errEndless   = errors.New("no end of line in sight; is this a JSONL file?")
)

// readFile opens path and reads it with readFrom.
func readFile[T any](path, what string, opt ReadOptions, parse func([]byte) (T, error)) ([]T, ReadStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ReadStats{}, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	return readFrom(f, path, opt, parse)
}

// readFrom reads JSONL from r, calling parse on each non-blank line; name
// stands for the file in messages.
func readFrom[T any](r io.Reader, name string, opt ReadOptions, parse func([]byte) (T, error)) ([]T, ReadStats, error) {
	var (
		out []T
		st  ReadStats
		lr  = newLineReader(r, name)
	)
	for {
		raw, lerr, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, st, err
		}
		st.Lines++
		if lerr == nil {
			ex, perr := parse(raw)
			if perr == nil {
				setLine(&ex, name, lr.line)
				out = append(out, ex)
				continue
			}
			lerr = lr.lineError(perr)
		}
		if !opt.SkipBadLines {
			return nil, st, lerr
		}
		st.Skipped++
		if len(st.Errors) < maxKeptErrors {
			st.Errors = append(st.Errors, lerr.Error())
		}
	}
	st.Examples = len(out)
	if len(out) == 0 {
		if st.Skipped > 0 {
			return nil, st, fmt.Errorf("%s: %w (%d bad lines skipped; first: %s)", name, errNoExample, st.Skipped, st.Errors[0])
		}
		return nil, st, fmt.Errorf("%s: %w", name, errNoExample)
	}
	return out, st, nil
}

// lineReader yields the non-blank lines of a JSONL input. Lines are
// numbered from 1, blank lines included, so that a message points at the
// line an editor shows.
type lineReader struct {
	br    *bufio.Reader
	name  string
	line  int
	accum []byte
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), name: name}
}

// next returns the next non-blank line, trimmed, without a byte order
// mark and checked to be UTF-8. A line that is too long or not UTF-8 comes
// back as a *LineError in bad (the caller may skip it); err is a read
// failure or io.EOF.
func (lr *lineReader) next() (raw []byte, bad, err error) {
	for {
		raw, err := readLine(lr.br, &lr.accum)
		if err == io.EOF {
			return nil, nil, io.EOF
		}
		lr.line++
		if err == errLongLine {
			return nil, lr.lineError(fmt.Errorf("%w: over %d bytes", errLongLine, maxLineBytes)), nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", lr.name, lr.line, err)
		}
		if lr.line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF")) // UTF-8 byte order mark
		}
		if raw = bytes.TrimSpace(raw); len(raw) == 0 {
			continue
		}
		if err := validUTF8(raw); err != nil {
			return nil, lr.lineError(err), nil
		}
		return raw, nil, nil
	}
}

// lineError is err located at the current line, with the field it names.
func (lr *lineReader) lineError(err error) *LineError {
	le := &LineError{Path: lr.name, Line: lr.line, Err: err}
	var fe *fieldError
	if errors.As(err, &fe) {
		le.Field, le.Err = fe.field, fe.err
	}
	return le
}

// IsComparisonFile tells a comparison file from an SFT file by its first
// record, reading no further: "responses", "ranking", "chosen" or
// "rejected" make it comparisons, "completion" or "messages"
// demonstrations.
func IsComparisonFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("read records: %w", err)
	}
	defer f.Close()
	lr := newLineReader(f, path)
	raw, bad, err := lr.next()
	switch {
	case err == io.EOF:
		return false, fmt.Errorf("%s: %w", path, errNoExample)
	case err != nil:
		return false, err
	case bad != nil:
		return false, bad
	}
	obj, err := object(raw)
	if err != nil {
		return false, lr.lineError(err)
	}
	for _, k := range []string{"responses", "ranking", "chosen", "rejected"} {
		if present(obj, k) {
			return true, nil
		}
	}
	for _, k := range []string{"completion", "messages"} {
		if present(obj, k) {
			return false, nil
		}
	}
	return false, lr.lineError(lineErr(`neither an SFT record ({"prompt", "completion"} or {"messages"}) nor a comparison ({"prompt", "responses", "ranking"} or {"prompt", "chosen", "rejected"})`))
}

// setLine records the source line in an example that has a Line field.
func setLine(ex any, file string, line int) {
	switch e := ex.(type) {
	case *SFTExample:
		e.Source = Source{file, line}
	case *Comparison:
		e.Source = Source{file, line}
	case *Prompt:
		e.Source = Source{file, line}
	}
}

// Source is where a record was read: its file (as named to the reader)
// and line, counted from 1.
type Source struct {
	File string
	Line int
}

// Where is "file:line", for messages about the record.
func (s Source) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// readLine returns the next line without its newline, reusing *accum for
// lines longer than the reader's buffer. A line over MaxLineBytes is read
// to its end and reported as errLongLine, unless it runs on for another
// 4×MaxLineBytes (an endless input such as /dev/zero), which is errEndless.
// At the end of input it returns io.EOF (a last line without a newline is
// returned first).
func readLine(br *bufio.Reader, accum *[]byte) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(frag) > 0) {
		return bytes.TrimSuffix(frag, []byte("\n")), nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	buf := append((*accum)[:0], frag...)
	long := false
	skipped := 0
	for {
		frag, err = br.ReadSlice('\n')
		if long {
			if skipped += len(frag); skipped > 4*maxLineBytes {
				return nil, errEndless
			}
		} else {
			n := len(frag)
			if err == nil {
				n-- // the newline
			}
			if len(buf)+n > maxLineBytes {
				long = true
				buf = buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		break
	}
	*accum = buf
	if long {
		return nil, errLongLine
	}
	return bytes.TrimSuffix(buf, []byte("\n")), nil
}

// object decodes a line that must be one JSON object.
func object(line []byte) (map[string]json.RawMessage, error) {
	if k := kind(line); k != "object" {
		if !json.Valid(line) {
			return nil, lineErr("invalid JSON: %v", syntaxErr(line))
		}
		return nil, lineErr("want a JSON object, got %s", k)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return nil, lineErr("invalid JSON: %v", err)
	}
	return obj, nil
}

func syntaxErr(line []byte) error {
	var v any
	if err := json.Unmarshal(line, &v); err != nil {
		return err
	}
	return errors.New("not a JSON value")
}

// kind names the JSON type of raw by its first byte ("" if it is none).
func kind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return ""
}

// present reports whether obj has field name with a non-null value.
func present(obj map[string]json.RawMessage, name string) bool {
	raw, ok := obj[name]
	return ok && kind(raw) != "null"
}

// str decodes a JSON string; field names it in errors. Empty strings are
// refused unless allowEmpty.
func str(raw json.RawMessage, field string, allowEmpty bool) (string, error) {
	if raw == nil {
		return "", &fieldError{field, errMissing}
	}
	if k := kind(raw); k != "string" {
		return "", fieldErr(field, "want string, got %s", k)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldErr(field, "%v", err)
	}
	if s == "" && !allowEmpty {
		return "", &fieldError{field, errEmpty}
	}
	return s, nil
}

// optStr decodes an optional string field: absent or null is "".
func optStr(obj map[string]json.RawMessage, name string) (string, error) {
	if !present(obj, name) {
		return "", nil
	}
	return str(obj[name], name, true)
}

// array decodes a JSON array into its elements.
func array(raw json.RawMessage, field string) ([]json.RawMessage, error) {
	if raw == nil {
		return nil, &fieldError{field, errMissing}
	}
	if k := kind(raw); k != "array" {
		return nil, fieldErr(field, "want array, got %s", k)
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fieldErr(field, "%v", err)
	}
	return a, nil
}

// integer decodes a JSON number that must be an integer.
func integer(raw json.RawMessage, field string) (int, error) {
	if k := kind(raw); k != "number" {
		return 0, fieldErr(field, "want integer, got %s", k)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(raw)))
	if err != nil {
		return 0, fieldErr(field, "want integer, got %s", truncate(string(raw), 32))
	}
	return n, nil
}

// number decodes a JSON number.
func number(raw json.RawMessage, field string) (float64, error) {
	if k := kind(raw); k != "number" {
		return 0, fieldErr(field, "want number, got %s", k)
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil {
		return 0, fieldErr(field, "number %s out of range", truncate(string(raw), 32))
	}
	return f, nil
}

// truncate shortens s for a message to at most n bytes, at a character
// boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// validUTF8 refuses a line that is not valid UTF-8 (encoding/json would
// replace the bad bytes with U+FFFD and the text would change silently),
// naming the byte offset.
func validUTF8(line []byte) error {
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && n == 1 {
			return lineErr("invalid UTF-8 at byte %d", i+1)
		}
		i += n
	}
	return nil
}
