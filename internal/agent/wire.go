package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/setpay/setpay/protocol"
)

// ContentType is the media type of a DER setpay MessageWrapper on HTTP.
const ContentType = "application/setpay"

// RemoteError is a protocol Error message a peer answered with.
type RemoteError struct {
	Peer string // the URL
	Data protocol.ErrorData
}

func (e *RemoteError) Error() string {
	s := fmt.Sprintf("%s refused: %s (code %d)", e.Peer, e.Data.Code, e.Data.Code)
	if e.Data.Detail != "" {
		s += ": " + e.Data.Detail
	}
	return s
}

// Code returns the protocol code of a RemoteError in err's chain, or that of
// a local protocol check, or 0.
func Code(err error) protocol.Code {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Data.Code
	}
	return protocol.CodeOf(err)
}

// Post sends m to url in a MessageWrapper dated now and returns the reply's
// wrapper and its DER. A reply that is an Error message is returned as a
// *RemoteError (with the wrapper, for callers that verify its signature).
func Post(ctx context.Context, c *http.Client, url string, m protocol.Message, now time.Time) (*protocol.Wrapper, []byte, error) {
	return PostDER(ctx, c, url, protocol.NewWrapper(m, now.UTC().Truncate(time.Second), nil, nil).Marshal())
}

// PostDER sends a DER MessageWrapper as it is: a retry sends the same bytes.
func PostDER(ctx context.Context, c *http.Client, url string, body []byte) (*protocol.Wrapper, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", ContentType)
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxMessageSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading the reply: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(firstLine(b)))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != ContentType {
		return nil, nil, fmt.Errorf("%s: reply of type %q, want %s", url, resp.Header.Get("Content-Type"), ContentType)
	}
	w, err := protocol.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reply: %w", url, err)
	}
	if e, ok := w.Message.(*protocol.Error); ok {
		return w, b, &RemoteError{Peer: url, Data: e.Data}
	}
	return w, b, nil
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return b
}

// ReadMessage reads the body of a POST carrying a DER MessageWrapper (at
// most protocol.MaxMessageSize bytes). On a transport-level problem it
// answers the request itself (405, 415, 413, 400) and returns false; the
// body is not parsed here, so that the caller answers a bad message with a
// protocol Error.
func ReadMessage(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a DER MessageWrapper", http.StatusMethodNotAllowed)
		return nil, false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentType {
		http.Error(w, "Content-Type must be "+ContentType, http.StatusUnsupportedMediaType)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxMessageSize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("a message is at most %d bytes", protocol.MaxMessageSize), http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

// WriteMessage answers with a DER MessageWrapper.
func WriteMessage(w http.ResponseWriter, der []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.Write(der)
}

// ErrorReply is the DER MessageWrapper of an Error message reporting err
// about the message in (nil: none), signed with key if it is set. An error
// without a protocol code is the receiver's own failure (a database write
// failed, the disk is full): it is reported as CodeUnavailable "internal
// error", so that no local detail leaks and the sender sends the same bytes
// again later rather than taking it as a refusal (a refusal would leave,
// say, a hold the bank placed with no one to settle it).
func ErrorReply(err error, in []byte, s protocol.Suite, key *protocol.SigningKey, nonce protocol.Challenge, now time.Time) []byte {
	if protocol.CodeOf(err) == 0 {
		err = &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "internal error; send the same request again later"}
	}
	if !s.Valid() {
		s = protocol.SuitePQ
	}
	if key != nil && key.Suite() != s {
		key = nil
	}
	e, eerr := protocol.NewError(err, nonce, s, in, key)
	if eerr != nil {
		e, _ = protocol.NewError(err, nonce, s, in, nil)
	}
	return protocol.NewWrapper(e, now.UTC().Truncate(time.Second), nil, nil).Marshal()
}
