package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Pre-tokenizer patterns are written for Oniguruma (Hugging Face
// tokenizers) and differ from Go's RE2 in two ways that change results:
//
//   - \s and \S are Unicode White_Space there (NBSP, U+3000, ...), ASCII in
//     Go. compilePattern rewrites them to the class whiteSpace.
//   - GPT-2, Llama 3 and Qwen2 end their patterns in `\s+(?!\S)|\s+`: a
//     whitespace run leaves its last character to the word that follows.
//     Go has no lookahead, so compilePattern turns that tail into one
//     capturing group `(\s+)`, and split gives back the last
//     character of a group match of two or more characters that stops
//     before the end of the text (a greedy run stops only at a
//     non-space). That is exactly what the lookahead matches: `\s+(?!\S)`
//     backtracks one character when a non-space follows, and fails (so
//     `\s+` takes the run) when the run is one character.
//
// The tail must end the pattern's top-level alternation; any other
// lookaround is refused.

// whiteSpace is Unicode's White_Space property as a class body: the ASCII
// controls, U+0085 and the separators (Zs, Zl, Zp).
const whiteSpace = `\t\n\v\f\r\x{85}\p{Z}`

// trimName names the group that stands for lookaheadTail.
const trimName = "instructgoTrim"

// lookaheadTail is the only lookaround compilePattern accepts.
const lookaheadTail = `\s+(?!\S)|\s+`

// pattern is a compiled pre-tokenizer pattern.
type pattern struct {
	re *regexp.Regexp
	// trimGroup is the index of the `(\s+)` group standing for
	// lookaheadTail, or 0 when the pattern has none.
	trimGroup int
}

func compilePattern(src string) (*pattern, error) {
	p := src
	trim := false
	// The rewrite is exact only for the last alternatives of the whole
	// pattern; elsewhere the lookahead is left in and refused below.
	if i := len(p) - len(lookaheadTail); strings.HasSuffix(p, lookaheadTail) && (i == 0 || p[i-1] == '|' && (i < 2 || p[i-2] != '\\')) {
		p = p[:i] + `(?P<` + trimName + `>\s+)`
		trim = true
	}
	for _, la := range []string{"(?=", "(?!", "(?<=", "(?<!"} {
		if strings.Contains(p, la) {
			return nil, fmt.Errorf("pattern %q: lookaround %s is not supported (only the trailing %s)", src, la, lookaheadTail)
		}
	}
	p, err := unicodeSpaces(p)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	pt := &pattern{re: re}
	if trim {
		pt.trimGroup = re.SubexpIndex(trimName)
	}
	return pt, nil
}

// unicodeSpaces rewrites \s and \S outside classes, and \s inside them,
// to Unicode White_Space.
func unicodeSpaces(p string) (string, error) {
	var sb strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			e := p[i+1]
			i++
			switch {
			case e == 's' && inClass:
				sb.WriteString(whiteSpace)
			case e == 's':
				sb.WriteString("[" + whiteSpace + "]")
			case e == 'S' && inClass:
				return "", fmt.Errorf(`\S inside a character class is not supported`)
			case e == 'S':
				sb.WriteString("[^" + whiteSpace + "]")
			default:
				sb.WriteByte(c)
				sb.WriteByte(e)
			}
			continue
		case c == '[' && !inClass:
			inClass = true
		case c == ']' && inClass:
			inClass = false
		}
		sb.WriteByte(c)
	}
	return sb.String(), nil
}

// split cuts text into the pattern's matches and the gaps between them,
// in order (Hugging Face's "Isolated" behaviour), none empty; it appends
// them to out.
func (pt *pattern) split(text string, out []string) []string {
	gap, pos := 0, 0 // gap: start of the text not yet emitted
	for pos < len(text) {
		m := pt.re.FindStringSubmatchIndex(text[pos:])
		if m == nil {
			break
		}
		start, end := pos+m[0], pos+m[1]
		if g := pt.trimGroup; g > 0 && m[2*g] >= 0 && end < len(text) {
			_, size := utf8.DecodeLastRuneInString(text[start:end])
			if end-size > start {
				end -= size
			}
		}
		if end == start { // an empty match: it joins the gap
			_, size := utf8.DecodeRuneInString(text[start:])
			pos = start + size
			continue
		}
		if start > gap {
			out = append(out, text[gap:start])
		}
		out = append(out, text[start:end])
		gap, pos = end, end
	}
	if gap < len(text) {
		out = append(out, text[gap:])
	}
	return out
}
