package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
)

// chatBacklog is how many earlier messages `laneim chat` shows on entering a room.
const chatBacklog = 20

// runChat runs `laneim chat [--url U] [--token T] [--user U] ROOM`: a terminal chat on
// the client package. It exits on end of input or Ctrl-C.
func runChat(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return chat(ctx, args, os.Stdin, os.Stdout)
}

func chat(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("laneim chat", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "server base URL")
	token := fs.String("token", "", "client JWT (default: a dev token for --user, from a dev-mode server)")
	user := fs.String("user", defaultChatUser(), "user id to chat as (default: the token's user, else $USER or guest)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: laneim chat [flags] ROOM\n\n")
		fs.PrintDefaults()
	}
	room, err := parseChatArgs(fs, args)
	if err != nil {
		return err
	}
	userSet := false
	fs.Visit(func(f *flag.Flag) { userSet = userSet || f.Name == "user" })
	if *token != "" && !userSet {
		sub, ok := tokenUser(*token)
		if !ok {
			return errors.New("chat: cannot read the user from --token; pass --user")
		}
		*user = sub
	}
	if !schema.ValidID(*user) {
		return fmt.Errorf("chat: user %q is not a valid id (1 to 64 of A-Z a-z 0-9 _ -)", *user)
	}
	wsURL, err := client.WSURL(*base)
	if err != nil {
		return err
	}
	p := &printer{w: out}

	cfg := client.Config{
		URL:       wsURL,
		Token:     *token,
		Reconnect: true,
		OnClose: func(code int, reason string) {
			switch code {
			case 1000:
			case schema.CloseKicked:
				// The client stops for good on a kick: say so, not "reconnecting".
				p.printf("* kicked by an operator (%s): leaving", reason)
			default:
				p.printf("* disconnected (%d %s), reconnecting", code, reason)
			}
		},
	}
	if *token == "" {
		// A dev token is fetched again on every reconnect, in case it expired.
		devUser, devBase := *user, *base
		cfg.TokenFunc = func(ctx context.Context) (string, error) {
			return client.DevToken(ctx, devBase, devUser)
		}
		if *token, err = client.DevToken(ctx, *base, *user); err != nil {
			return fmt.Errorf("chat: dev token (is the server in dev mode? else pass --token): %w", err)
		}
	}
	api := &client.HTTP{Base: *base, Token: *token}
	if err := joinRoom(ctx, api, room, *user, p); err != nil {
		return err
	}

	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return fmt.Errorf("chat: connect: %w", err)
	}
	defer c.Close()
	seq, err := roomSeq(ctx, api, c.Ready(), room)
	if err != nil {
		return err
	}
	since := max(0, seq-chatBacklog)
	if _, err := c.SubscribeWith(ctx, room, client.SubscribeOptions{Since: &since, Presence: true}); err != nil {
		return fmt.Errorf("chat: subscribe %s: %w", room, err)
	}
	p.printf("* %s in %s; type a line to send it, /help for commands, Ctrl-D or Ctrl-C to leave", *user, room)

	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for ev := range c.Events() {
			p.event(ev, room)
		}
	}()
	lines := make(chan string)
	go func() { // left blocked in Read on Ctrl-C; the process is exiting then
		defer close(lines)
		scanner := bufio.NewScanner(in)
		for scanner.Scan() {
			select {
			case lines <- scanner.Text():
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return leaveChat(c, printed)
		case <-printed: // the client stopped for good (kicked, refused token)
			return fmt.Errorf("chat: %w", c.Err())
		case line, ok := <-lines:
			if !ok {
				return leaveChat(c, printed)
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if strings.HasPrefix(line, "/") {
				if err := chatCommand(ctx, c, room, line, p); err != nil && ctx.Err() == nil {
					p.printf("! %v", err)
				}
				continue
			}
			if _, err := c.Send(ctx, room, chatBody{line}); err != nil && ctx.Err() == nil {
				p.printf("! not sent: %v", err)
			}
		}
	}
}

// chatBody is the body of a message typed in laneim chat.
type chatBody struct {
	Text string `json:"text"`
}

const chatHelp = `commands:
  /who              who of the room is online (the first 100)
  /edit SEQ TEXT    replace your message SEQ's text
  /delete SEQ       delete message SEQ (yours, or any as the room's owner or a moderator)
  /help             this
  //TEXT            send /TEXT`

// chatCommand runs one of chatHelp's commands; "//..." sends "/...".
func chatCommand(ctx context.Context, c *client.Client, room, line string, p *printer) error {
	if strings.HasPrefix(line, "//") {
		_, err := c.Send(ctx, room, chatBody{line[1:]})
		return err
	}
	name, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	seqArg := func() (int64, string, error) {
		word, text, _ := strings.Cut(rest, " ")
		seq, err := strconv.ParseInt(strings.Trim(word, "[]"), 10, 64)
		if err != nil || seq < 1 {
			return 0, "", fmt.Errorf("%s needs a message's seq, the number in [brackets]", name)
		}
		return seq, strings.TrimSpace(text), nil
	}
	switch name {
	case "/who":
		page, err := c.Presence(ctx, room, "", 100)
		if err != nil {
			return err
		}
		more := ""
		if page.More {
			more = ", ..."
		}
		p.printf("* %d online: %s%s", page.Online, strings.Join(page.Users, ", "), more)
	case "/edit":
		seq, text, err := seqArg()
		if err != nil {
			return err
		}
		if text == "" {
			return errors.New("/edit needs the new text after the seq")
		}
		_, err = c.Edit(ctx, room, seq, chatBody{text})
		return err
	case "/delete":
		seq, _, err := seqArg()
		if err != nil {
			return err
		}
		_, err = c.Delete(ctx, room, seq)
		return err
	case "/help":
		p.printf("%s", chatHelp)
	default:
		return fmt.Errorf("unknown command %s (/help lists them)", name)
	}
	return nil
}

// leaveChat closes the client and lets the printer finish what was received.
func leaveChat(c *client.Client, printed <-chan struct{}) error {
	c.Close()
	<-printed
	return nil
}

// parseChatArgs parses flags before and after ROOM (`laneim chat general --user bob`).
func parseChatArgs(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return "", errors.New("chat: ROOM is required")
	}
	room := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() != 0 {
		return "", fmt.Errorf("chat: unexpected arguments %q", fs.Args())
	}
	if !schema.ValidID(room) {
		return "", fmt.Errorf("chat: room %q is not a valid id (1 to 64 of A-Z a-z 0-9 _ -)", room)
	}
	return room, nil
}

// joinRoom makes user a member of room, creating it public when it does not exist.
// The server answers forbidden alike for a room that does not exist and one that may
// not be joined, so a refused join is followed by a create, and a create that finds
// the id taken by someone else's private room says so.
func joinRoom(ctx context.Context, api *client.HTTP, room, user string, p *printer) error {
	join := func() error {
		return api.Do(ctx, http.MethodPut, "/v1/rooms/"+room+"/members/"+user, nil, nil)
	}
	err := join()
	if !errors.Is(err, schema.ErrForbidden) {
		if err != nil {
			return fmt.Errorf("chat: join %s: %w", room, err)
		}
		return nil
	}
	create := map[string]any{"room": room, "public": true}
	err = api.Do(ctx, http.MethodPost, "/v1/rooms", create, nil)
	switch {
	case err == nil:
		p.printf("* created public room %s", room)
		return nil
	case errors.Is(err, schema.ErrConflict):
		// Someone created it meanwhile, public (join it) or private (refused).
		if err := join(); err != nil {
			return fmt.Errorf("chat: room %s exists and is private: ask its owner to add you: %w", room, err)
		}
		return nil
	default:
		return fmt.Errorf("chat: create %s: %w", room, err)
	}
}

// roomSeq is room's latest seq: from ready when the room is listed there, else asked
// over HTTP (a membership made just before connecting may not be in ready yet).
func roomSeq(ctx context.Context, api *client.HTTP, ready schema.ReadyD, room string) (int64, error) {
	for _, r := range ready.Rooms {
		if r.Room == room {
			return r.Seq, nil
		}
	}
	var info schema.RoomInfo
	if err := api.Do(ctx, http.MethodGet, "/v1/rooms/"+room, nil, &info); err != nil {
		return 0, fmt.Errorf("chat: room %s: %w", room, err)
	}
	if info.Seq == nil {
		return 0, nil
	}
	return *info.Seq, nil
}

// printer writes whole lines from the event and input goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer

	// The typing line last shown and when it was named last; the event loop's.
	typing   string
	typingAt time.Time
}

// presence shows a presence event: the count first, then who came and went (a
// summary when many did at once).
func (p *printer) presence(d *schema.PresenceEventD) {
	switch n := len(d.On) + len(d.Off); {
	case n == 0:
		p.printf("* %d online", d.Online)
	case n > 6:
		p.printf("* %d came online, %d went offline (%d online)", len(d.On), len(d.Off), d.Online)
	default:
		for _, u := range d.On {
			p.printf("* %s is online", u)
		}
		for _, u := range d.Off {
			p.printf("* %s went offline", u)
		}
	}
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) event(ev client.Event, room string) {
	switch {
	case ev.Batch != nil:
		msgs, err := ev.Messages()
		if err != nil {
			p.printf("! undecodable messages: %v", err)
			return
		}
		if ev.Batch.Room != room {
			return
		}
		for _, m := range msgs {
			switch m.Kind {
			case schema.KindEdit:
				p.printf("[%d] %s edited [%d]: %s", m.Seq, m.User, m.Ref, bodyText(m.Body))
			case schema.KindDelete:
				p.printf("[%d] %s deleted [%d]", m.Seq, m.User, m.Ref)
			case schema.KindEdited:
				p.printf("[%d] %s: %s (edited)", m.Seq, m.User, bodyText(m.Body))
			case schema.KindDeleted:
				p.printf("[%d] %s: (deleted)", m.Seq, m.User)
			default:
				p.printf("[%d] %s: %s", m.Seq, m.User, bodyText(m.Body))
			}
		}
	case ev.Member != nil && ev.Member.Room == room:
		verb := "joined"
		if ev.Member.Action == schema.ActionLeave {
			verb = "left"
		}
		p.printf("* %s %s", ev.Member.User, verb)
	case ev.Room != nil && ev.Room.Room == room:
		switch ev.Room.Action {
		case schema.RoomRenamed:
			p.printf("* the room is now called %s", ev.Room.Name)
		case schema.RoomOwner:
			p.printf("* %s owns the room now", ev.Room.User)
		case schema.RoomModerator:
			p.printf("* %s moderator: %v", ev.Room.User, ev.Room.Moderator != nil && *ev.Room.Moderator)
		case schema.RoomDeleted:
			p.printf("* the room was deleted")
		case schema.RoomMuted:
			p.printf("* %s is muted%s", ev.Room.User, untilText(ev.Room.Until))
		case schema.RoomUnmuted:
			p.printf("* %s is no longer muted", ev.Room.User)
		case schema.RoomBanned:
			p.printf("* %s is banned%s", ev.Room.User, untilText(ev.Room.Until))
		case schema.RoomUnbanned:
			p.printf("* %s is no longer banned", ev.Room.User)
		}
	case ev.Presence != nil && ev.Presence.Room == room:
		p.presence(ev.Presence)
	case ev.Typing != nil && ev.Typing.Room == room && len(ev.Typing.Users) > 0:
		// Typing is named again every few seconds while it lasts: say it once a run.
		if names := strings.Join(ev.Typing.Users, ", "); names != p.typing || time.Since(p.typingAt) > 10*time.Second {
			p.printf("* %s typing...", names)
			p.typing = names
		}
		p.typingAt = time.Now()
	case ev.Ready != nil:
		p.printf("* reconnected")
	case ev.Err != nil:
		p.printf("! %s: %s", ev.Err.Code, ev.Err.Message)
	}
}

// untilText is " until <time>" for a mute's or ban's end (Unix ms), "" for none.
func untilText(until int64) string {
	if until == 0 {
		return ""
	}
	return " until " + time.UnixMilli(until).Format("15:04:05")
}

// bodyText shows a message body: a JSON string as it is, {"text":...} as its text,
// anything else as compact JSON. Control characters are blanked so that a message
// cannot move the cursor or recolor the terminal.
func bodyText(body json.RawMessage) string {
	var text string
	if json.Unmarshal(body, &text) != nil {
		var obj struct {
			Text *string `json:"text"`
		}
		if json.Unmarshal(body, &obj) == nil && obj.Text != nil {
			text = *obj.Text
		} else {
			var buf bytes.Buffer
			if json.Compact(&buf, body) != nil {
				buf.Reset()
				buf.Write(body)
			}
			text = buf.String()
		}
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\t' {
			return ' '
		}
		return r
	}, text)
}

// defaultChatUser is $USER when it is a valid id, else guest.
func defaultChatUser() string {
	if u := os.Getenv("USER"); schema.ValidID(u) {
		return u
	}
	return "guest"
}

// tokenUser reads the sub claim of a JWT without verifying it: the server verifies,
// the chat only needs the name to join the room as.
func tokenUser(token string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", false
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil || !schema.ValidID(claims.Sub) {
		return "", false
	}
	return claims.Sub, true
}
