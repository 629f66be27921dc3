package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// flagChatTemplate is the global --chat-template: how the commands that
// read messages data render it (tokenizer.ForChat decides; this file only
// passes the flag on).
const flagChatTemplate = "chat-template"

func chatTemplateFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  flagChatTemplate,
		Value: tokenizer.ChatAuto,
		Usage: "how messages data is rendered for the model: auto (the chat template in the model's tokenizer_config.json; the built-in tokenizers use plain \"role: content\" lines), none (plain lines for every model) or a template name (" +
			strings.Join(tokenizer.ChatTemplateNames(), ", ") + "). A --resume must render as the run did (another choice is refused)",
	}
}

// checkChatTemplateFlag validates --chat-template before any command runs.
func checkChatTemplateFlag(c *cli.Context) error {
	s := c.String(flagChatTemplate)
	if s == tokenizer.ChatAuto || s == tokenizer.ChatNone || slices.Contains(tokenizer.ChatTemplateNames(), s) {
		return nil
	}
	return usageErrorf("invalid --%s %q: want auto, none or one of %s", flagChatTemplate, s, strings.Join(tokenizer.ChatTemplateNames(), ", "))
}

// modelTokenizer is the tokenizer of a model directory (tokenizer.ForModel;
// name is the built-in one for a model without a tokenizer.json) set up
// for conversations by --chat-template.
func modelTokenizer(c *cli.Context, dir, name string) (tokenizer.Tokenizer, error) {
	tok, err := tokenizer.ForModel(dir, name)
	if err != nil {
		return nil, err
	}
	if tok, err = tokenizer.ForChat(tok, c.String(flagChatTemplate)); err != nil {
		return nil, fmt.Errorf("--%s: %w", flagChatTemplate, err)
	}
	return tok, nil
}

// dirTokenizer is modelTokenizer for the checkpoint in dir, reading its
// config for the built-in tokenizer's name.
func dirTokenizer(c *cli.Context, dir string) (tokenizer.Tokenizer, error) {
	cfg, err := model.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	return modelTokenizer(c, dir, cfg.Tokenizer)
}

// chatName names how tok renders conversations, for messages: its
// template's name, or "plain lines".
func chatName(tok tokenizer.Tokenizer) string {
	if t, _ := tokenizer.ChatOf(tok); t != nil {
		return t.Name()
	}
	return "plain lines"
}
