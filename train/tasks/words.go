package tasks

// The built-in vocabulary: common English words, lower case, 3 to 7
// letters, written for this package. Tasks draw their inputs from it and
// pretrain.txt is made of it, so a small byte-level model meets every word
// during pretraining.

// nouns are things; they fill most task inputs.
var nouns = []string{
	"apple", "river", "table", "chair", "house", "garden", "bird", "fish",
	"horse", "tiger", "lion", "mouse", "cat", "dog", "cow", "pig", "duck",
	"goat", "sheep", "wolf", "bear", "fox", "frog", "snake", "bee", "ant",
	"owl", "hen", "bread", "milk", "cheese", "butter", "egg", "rice", "soup",
	"cake", "tea", "juice", "water", "honey", "lemon", "grape", "pear",
	"plum", "peach", "melon", "berry", "bean", "corn", "salt", "sugar",
	"book", "pen", "paper", "letter", "story", "song", "word", "name",
	"door", "window", "wall", "roof", "floor", "room", "bed", "lamp",
	"clock", "cup", "plate", "bowl", "spoon", "fork", "knife", "box", "bag",
	"hat", "coat", "shoe", "sock", "shirt", "dress", "ring", "key", "coin",
	"card", "ball", "kite", "boat", "ship", "car", "bus", "train", "bike",
	"road", "bridge", "town", "city", "farm", "field", "forest", "hill",
	"lake", "sea", "beach", "island", "stone", "rock", "sand", "snow",
	"rain", "wind", "cloud", "storm", "sun", "moon", "star", "sky", "fire",
	"night", "day", "week", "year", "morning", "summer", "winter", "tree",
	"leaf", "flower", "grass", "seed", "root", "king", "queen", "child",
	"friend", "mother", "father", "sister", "brother", "baby", "doctor",
	"farmer", "teacher", "pilot", "baker", "singer", "music", "game",
	"party", "school", "market", "shop", "money", "gift", "dream", "smile",
	"voice", "hand", "foot", "head", "face", "eye", "ear", "nose", "heart",
	"mind", "map", "nest", "pond", "path", "tent", "rope", "bell", "drum",
	"flag", "gate", "yard", "desk", "jar", "pot", "pan", "oven", "shelf",
}

// adjectives describe things.
var adjectives = []string{
	"red", "blue", "green", "yellow", "black", "white", "brown", "pink",
	"gray", "big", "small", "tall", "short", "long", "old", "new", "young",
	"hot", "cold", "warm", "cool", "fast", "slow", "happy", "sad", "quiet",
	"loud", "soft", "hard", "kind", "brave", "calm", "clean", "dark",
	"bright", "sweet", "sour", "fresh", "quick", "lazy", "rich", "poor",
	"wise", "wild", "funny", "strong", "weak", "heavy", "empty", "full",
	"round", "sharp", "smooth", "gentle", "proud", "busy", "shy", "lucky",
	"early", "late", "tiny", "huge", "neat", "odd", "glad", "fair",
}

// verbs are actions, in their base form.
var verbs = []string{
	"run", "walk", "jump", "swim", "fly", "sing", "read", "write", "draw",
	"paint", "cook", "eat", "drink", "sleep", "play", "work", "help",
	"open", "close", "carry", "catch", "throw", "build", "make", "find",
	"keep", "hold", "push", "pull", "watch", "see", "hear", "smell",
	"taste", "touch", "wash", "climb", "dance", "laugh", "cry", "call",
	"ask", "tell", "speak", "think", "know", "learn", "teach", "plant",
	"grow", "pick", "cut", "fold", "fix", "buy", "sell", "send", "bring",
	"take", "give", "love", "like", "want", "need", "visit", "wait",
	"stay", "leave", "start", "stop", "turn", "move", "hide", "bake",
}

// vocabulary is every word above, in order: nouns, adjectives, verbs.
var vocabulary = concat(nouns, adjectives, verbs)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// Vocabulary returns a copy of the built-in word list.
func Vocabulary() []string { return append([]string(nil), vocabulary...) }
