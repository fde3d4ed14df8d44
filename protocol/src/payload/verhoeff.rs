//! The Verhoeff check digit (detects every single-digit error and adjacent transposition).

const D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

const P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

const INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// The check digit to append to `digits` (each 0..=9).
pub(crate) fn check_digit(digits: &[u8]) -> u8 {
    let mut c = 0usize;
    for (i, &digit) in digits.iter().rev().enumerate() {
        c = D[c][P[(i + 1) % 8][usize::from(digit % 10)] as usize] as usize;
    }
    INV[c]
}

/// Whether `digits` (including the trailing check digit) is valid.
pub(crate) fn is_valid(digits: &[u8]) -> bool {
    let mut c = 0usize;
    for (i, &digit) in digits.iter().rev().enumerate() {
        c = D[c][P[i % 8][usize::from(digit % 10)] as usize] as usize;
    }
    c == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // Standard example: 236 -> check digit 3.
        assert_eq!(check_digit(&[2, 3, 6]), 3);
        assert!(is_valid(&[2, 3, 6, 3]));
        assert_eq!(check_digit(&[7, 5, 8, 7, 2]), 2);
        assert!(is_valid(&[7, 5, 8, 7, 2, 2]));
    }

    #[test]
    fn detects_single_errors_and_transpositions() {
        let mut digits = vec![3, 4, 9, 7, 0, 1, 1, 2, 3, 3];
        digits.push(check_digit(&digits));
        assert!(is_valid(&digits));
        for i in 0..digits.len() {
            for d in 0..10 {
                if d != digits[i] {
                    let mut bad = digits.clone();
                    bad[i] = d;
                    assert!(!is_valid(&bad), "substitution at {i}");
                }
            }
            if i + 1 < digits.len() && digits[i] != digits[i + 1] {
                let mut bad = digits.clone();
                bad.swap(i, i + 1);
                assert!(!is_valid(&bad), "transposition at {i}");
            }
        }
    }
}
