package merchant

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Item is one article of the catalogue; prices are in minor units of the
// merchant's currency.
type Item struct {
	SKU         string `json:"sku"`
	Description string `json:"description"`
	Price       int64  `json:"price"`
}

// DefaultCatalogue is the small shop every merchant starts with.
var DefaultCatalogue = []Item{
	{SKU: "set-book", Description: "The Illustrated SET, paperback", Price: 4200},
	{SKU: "tea", Description: "Loose-leaf tea, 250 g", Price: 1250},
	{SKU: "mug", Description: "Mug with the dual-signature diagram", Price: 990},
}

// Catalogue is what GET /catalogue answers.
type Catalogue struct {
	Merchant     string `json:"merchant"`
	MerchantID   string `json:"merchantID"`
	Currency     int    `json:"currency"`
	Items        []Item `json:"items"`
	CustomOrders bool   `json:"customOrders"`
	RequireCert  bool   `json:"requireCert"`
}

// OrderRequest is the body of POST /orders: a catalogue article and a
// quantity, or (where the merchant takes custom orders) a description and
// an amount.
type OrderRequest struct {
	SKU         string `json:"sku,omitempty"`
	Quantity    int    `json:"quantity,omitempty"`
	Description string `json:"description,omitempty"`
	Amount      int64  `json:"amount,omitempty"`
}

// Agreed is an order both sides agreed: the answer to POST /orders, and the
// order description and amount the cardholder's PReq must carry.
type Agreed struct {
	Order       string `json:"order"`
	Description string `json:"description"`
	Currency    int    `json:"currency"`
	Amount      int64  `json:"amount"`
}

// Limits of an order.
const (
	maxQuantity    = 100
	maxDescription = 500 // bytes of an order description
	maxAmount      = 1_000_000_00
)

// agree turns an order request into an order description and amount.
func (m *Merchant) agree(r *OrderRequest) (string, int64, error) {
	if r.SKU != "" {
		if r.Description != "" || r.Amount != 0 {
			return "", 0, errors.New("give a sku and a quantity, or a description and an amount, not both")
		}
		for _, it := range m.catalogue {
			if it.SKU == r.SKU {
				q := r.Quantity
				if q == 0 {
					q = 1
				}
				if q < 1 || q > maxQuantity {
					return "", 0, fmt.Errorf("quantity must be 1 to %d", maxQuantity)
				}
				return fmt.Sprintf("%d x %s", q, it.Description), int64(q) * it.Price, nil
			}
		}
		return "", 0, fmt.Errorf("no article %q in the catalogue", r.SKU)
	}
	if !m.cfg.CustomOrders {
		return "", 0, errors.New("this merchant sells from its catalogue only: give a sku")
	}
	d := strings.TrimSpace(r.Description)
	switch {
	case d == "":
		return "", 0, errors.New("an order needs a description")
	case len(d) > maxDescription || !utf8.ValidString(d):
		return "", 0, fmt.Errorf("an order description is valid UTF-8 of at most %d bytes", maxDescription)
	case r.Amount <= 0 || r.Amount > maxAmount:
		return "", 0, fmt.Errorf("an amount is 1 to %d minor units", maxAmount)
	}
	return d, r.Amount, nil
}
