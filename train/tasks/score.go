package tasks

import (
	"math"
	"strconv"
	"strings"
)

// The scorers are the ground truth of the task family: a response's score
// says how close it is to the task's one correct answer, from 0 (nothing
// of it) to 1 (exactly it), with partial credit in between so that a policy
// trained against it (or against a reward model fitted to a labeler who
// follows it) gets a smooth signal. Leading and trailing ASCII white space
// of a response is ignored by the scorers (a clean stop is a matter of
// style, which the Labeler judges); everything else counts.

// textSimilarity is 1 − d/max(len(answer), len(response)), where d is the
// byte-level Levenshtein distance (insertions, deletions and substitutions
// cost 1 each). Equal strings score 1, strings with nothing in common 0;
// one wrong letter in a five-letter word scores 0.8, the answer with three
// bytes of junk after a five-letter answer 0.625.
func textSimilarity(answer, response string) float64 {
	n := max(len(answer), len(response))
	if n == 0 {
		return 1
	}
	return 1 - float64(levenshtein(answer, response))/float64(n)
}

// levenshtein is the edit distance between a and b in bytes.
func levenshtein(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0] // row[i-1][j-1]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := min(row[j]+1, row[j-1]+1, diag+cost)
			diag, row[j] = row[j], next
		}
	}
	return row[len(b)]
}

// numberScore scores a response to a task whose answer is a non-negative
// integer: a textual part and a numeric part, mixed by textWeight w,
//
//	score = w·textSimilarity(answer, r) + (1−w)·exp(−|v − answer|/scale)·len(num)/len(r)
//
// where r is the trimmed response, num its leading integer (an optional
// minus sign and digits) and v that integer's value; the numeric part is 0
// when r does not start with an integer. The exact answer scores 1,
// trailing junk after the right number is paid for in both parts, and a
// response with no number at all can earn only textual credit. The textual
// part gives credit for right digits in a long number (w = ½, scale 5: an
// off-by-one 132 for 133 scores about 0.74, a wrong tens digit 0.40); for
// one-digit answers it only adds steps, and w = 0 leaves the smooth
// numeric part alone.
func numberScore(answer, r string, scale, textWeight float64) float64 {
	r = trimSpace(r)
	if r == answer {
		return 1
	}
	text := textWeight * textSimilarity(answer, r)
	num := leadingInteger(r)
	want, err := strconv.ParseFloat(answer, 64)
	if num == "" || err != nil {
		return text
	}
	got, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(got, 0) {
		return text
	}
	closeness := math.Exp(-math.Abs(got-want) / scale)
	return clamp01(text + (1-textWeight)*closeness*float64(len(num))/float64(len(r)))
}

// leadingInteger returns the integer s starts with: an optional '-' and at
// least one digit, or "".
func leadingInteger(s string) string {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start {
		return ""
	}
	return s[:i]
}

// trimSpace drops leading and trailing ASCII white space (space, tab,
// newline, carriage return, vertical tab, form feed).
func trimSpace(s string) string {
	return strings.Trim(s, " \t\n\r\v\f")
}

func clamp01(x float64) float64 {
	switch {
	case x < 0 || math.IsNaN(x):
		return 0
	case x > 1:
		return 1
	}
	return x
}
